"""``sql_query``: read-only SQL against the data sources named in ``SQL_DATA_SOURCES``.

Two independent guards: the statement must be a single read statement (``SELECT``,
``WITH ... SELECT``, ``VALUES``, ``EXPLAIN``, ``SHOW``) with no write keyword outside string
literals, and it runs inside a read-only transaction (PostgreSQL ``SET TRANSACTION READ
ONLY``; SQLite ``PRAGMA query_only``) that is always rolled back.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError
from agentlightning.storage.db import normalise_url

READ_STARTS = ("select", "with", "values", "explain", "show", "table")
#: Words that make a statement (or a data-modifying CTE / SELECT INTO) write; the read-only
#: transaction is the second guard for anything this lexical check misses.
WRITE_WORDS = {
    "insert",
    "update",
    "delete",
    "merge",
    "upsert",
    "into",
    "drop",
    "alter",
    "create",
    "truncate",
    "grant",
    "revoke",
    "copy",
    "attach",
    "detach",
    "pragma",
    "vacuum",
    "reindex",
    "lock",
}
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$\$.*?\$\$", re.DOTALL)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_WORD = re.compile(r"[a-z_]+")


def check_read_only(sql: str) -> str:
    """Return the statement (without a trailing ``;``) if it is a single read; else raise."""
    stripped = _COMMENTS.sub(" ", sql).strip().rstrip(";").strip()
    if not stripped:
        raise ToolError("empty query")
    bare = _STRINGS.sub("''", stripped).lower()
    if ";" in bare:
        raise ToolError("only one statement per query is allowed")
    words = _WORD.findall(bare)
    if not words or words[0] not in READ_STARTS:
        raise ToolError("only read-only queries (SELECT, WITH, VALUES, EXPLAIN, SHOW) are allowed")
    bad = sorted(set(words) & WRITE_WORDS)
    if bad:
        raise ToolError(f"write or session statements are not allowed (found: {', '.join(bad)})")
    return stripped


_engines: dict[str, AsyncEngine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> AsyncEngine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_async_engine(normalise_url(url), pool_pre_ping=True, pool_size=2)
        return engine


async def run_read_only(url: str, sql: str, max_rows: int, timeout_s: float) -> dict[str, Any]:
    """Run a checked query in a read-only transaction and return columns and rows."""
    statement = check_read_only(sql)
    engine = _engine(url)
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            if engine.dialect.name == "postgresql":
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"))
            elif engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA query_only = ON")
            result = await conn.execute(text(statement))
            columns = list(result.keys())
            rows = result.fetchmany(max_rows + 1)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - database errors are reported to the model
            raise ToolError(f"query failed: {getattr(exc, 'orig', exc)}") from exc
        finally:
            await trans.rollback()
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA query_only = OFF")
    truncated = len(rows) > max_rows
    return {
        "columns": columns,
        "rows": [[_jsonable(v) for v in row] for row in rows[:max_rows]],
        "row_count": min(len(rows), max_rows),
        "truncated": truncated,
    }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class SqlQueryTool(Tool):
    """Lets an agent read (never write) a configured database."""

    name = "sql_query"
    description = (
        "Run one read-only SQL query (SELECT/WITH) against a named data source and get columns and rows. "
        "Write statements are refused."
    )
    parameters = {
        "type": "object",
        "properties": {
            "data_source": {"type": "string", "description": "Name of a configured data source."},
            "query": {"type": "string", "description": "A single SELECT statement."},
        },
        "required": ["data_source", "query"],
        "additionalProperties": False,
    }
    permission = "data"
    timeout_s = 15.0

    def enabled(self, settings: Any) -> bool:
        """Only when at least one data source is configured."""
        return bool(settings.sql_data_sources)

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Check, run and return the query's rows."""
        sources = ctx.settings.sql_data_sources
        name = args["data_source"]
        if name not in sources:
            raise ToolError(f"unknown data source {name!r}; available: {sorted(sources)}")
        result = await run_read_only(sources[name], args["query"], ctx.settings.sql_max_rows, self.timeout_s)
        return {"data_source": name, **result}
