"""Constant statements run on asyncpg's own connection, for the task queue's hottest statements.

A statement executed through SQLAlchemy costs, besides the driver's own work, an execution context
(parameter processing, result wrapping) and, for an autocommit connection, switching the
connection's isolation level out and back: measured here at about 300 µs of CPU per statement
against about 160 µs for the same statement on the driver connection of a pooled connection (and
70 µs for the bare driver on a connection it holds).  On the queue's hot path (one statement to
assign, one to store an outcome) that difference is a measurable share of each task's CPU.

:class:`DriverStatement` keeps the statement written once, as a SQLAlchemy ``text()`` with typed
parameters: it is compiled once for asyncpg (positional ``$n`` parameters with their casts), and
each parameter's SQLAlchemy bind processor (JSON encoding, UTC timestamps) is applied here as
SQLAlchemy would.  :meth:`agentlightning.storage.db.Database.driver_connection` lends the
connection, from SQLAlchemy's pool (one pool, one set of limits and liveness checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.elements import TextClause

from agentlightning.storage.types import JSON_CODEC

_DIALECT = asyncpg_dialect(**JSON_CODEC)  # the engine's JSON codec (see Database)


class DriverStatement:
    """A constant ``text()`` statement compiled once for asyncpg, run on a driver connection.

    Rows come back as asyncpg ``Record``s (``row["name"]``); JSON columns are decoded by the
    codecs SQLAlchemy installs on its asyncpg connections.
    """

    def __init__(self, statement: TextClause) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        #: Parameter names in ``$n`` order (a name used twice in the SQL has one number).
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors: list[Callable[[Any], Any] | None] = []
        for name in self.names:
            type_ = compiled.binds[name].type
            processors.append(type_.dialect_impl(_DIALECT).bind_processor(_DIALECT))
        self._processors = tuple(processors)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``params`` (each passed through its bind processor)."""
        out = []
        for name, process in zip(self.names, self._processors, strict=True):
            value = params[name]
            out.append(process(value) if process is not None and value is not None else value)
        return out

    async def fetch(self, conn: Any, params: Mapping[str, Any]) -> Sequence[Any]:
        """Run on ``conn`` (an asyncpg connection) and return every row."""
        return await conn.fetch(self.sql, *self.arguments(params))

    async def fetchrow(self, conn: Any, params: Mapping[str, Any]) -> Any:
        """Run on ``conn`` and return the first row (None when there is none)."""
        return await conn.fetchrow(self.sql, *self.arguments(params))
