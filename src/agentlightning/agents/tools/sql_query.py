"""``sql_query``: read-only SQL against the data sources an admin declares in ``SQL_DATA_SOURCES``.

Read-only is the **database's** decision, not a keyword filter's:

* **PostgreSQL**: the source's URL names a dedicated role (``agentlightning sql create-reader``
  makes one) that may only ``SELECT`` the tables listed for the source. Before each query the
  tool verifies that the role really is that weak (no superuser/createrole/createdb/bypassrls, no
  membership of the file/program/signal/read-all roles, no privilege but ``SELECT`` on listed
  tables) and refuses the source otherwise. The query runs in a ``READ ONLY`` transaction with
  statement, lock and idle timeouts, on a connection of its own that is closed afterwards (no
  session state, advisory lock or ``SET`` outlives the call); the extended protocol refuses
  several statements in one call.
* **SQLite**: the file is opened read-only (``mode=ro``) and an authorizer
  (``sqlite3.Connection.set_authorizer``) allows only ``SELECT`` reads of the listed tables of the
  main database and an allow-list of functions; ``ATTACH``, ``PRAGMA`` and every write are denied.
  A progress handler enforces the time limit.

A lexical pre-check (one read statement, no write keywords) stays in front as a friendly first
answer; it is not the boundary. The platform's own tables can never be listed for a source.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError
from agentlightning.storage.db import normalise_url

READ_STARTS = ("select", "with", "values", "explain", "show", "table")
#: Words that make a statement (or a data-modifying CTE / SELECT INTO) write.
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

#: Predefined PostgreSQL roles whose membership would hand the query files, programs, other
#: sessions or every table.
DANGEROUS_PG_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_read_all_settings",
    "pg_monitor",
)

#: SQLite functions a query may call (anything else, e.g. ``load_extension``, is denied).
SQLITE_FUNCTIONS = frozenset(
    """abs avg count max min sum total group_concat string_agg length octet_length lower upper substr
    substring trim ltrim rtrim replace round coalesce ifnull nullif instr date time datetime
    julianday unixepoch strftime timediff printf format typeof like glob hex unhex quote iif char
    unicode sign ceil ceiling floor trunc exp ln log log10 log2 pow power sqrt mod pi concat concat_ws
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    json json_extract json_array json_object json_array_length json_type json_valid json_quote
    json_group_array json_group_object json_each json_tree cast likely unlikely zeroblob""".split()
)


def check_read_only(sql: str) -> str:
    """Return the statement (without a trailing ``;``) if it looks like a single read; else raise."""
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


def platform_tables() -> frozenset[str]:
    """Names of the platform's own tables (never readable through a data source)."""
    from agentlightning.storage.models import Base

    names = {t.name for t in Base.metadata.tables.values()} | {"alembic_version"}
    return frozenset(names)


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return (schema or "public", name)


def check_tables(tables: list[str]) -> list[str]:
    """The declared tables, refusing any of the platform's own."""
    own = platform_tables()
    bad = sorted(t for t in tables if _split(t)[1].lower() in own)
    if bad:
        raise ToolError(f"the platform's own tables cannot be a data source: {', '.join(bad)}")
    return tables


async def _check_pg_role(conn: Any, tables: list[str]) -> None:
    """Refuse a connection whose role could do more than read the listed tables."""
    row = (
        await conn.execute(
            text(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, current_user FROM pg_roles "
                "WHERE rolname = current_user"
            )
        )
    ).one()
    if any(row[:4]):
        raise ToolError(f"data source refused: role {row[4]!r} is privileged; use a read-only role")
    for role in DANGEROUS_PG_ROLES:
        member = await conn.scalar(
            text("SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = :r"), {"r": role}
        )
        if member:
            raise ToolError(f"data source refused: its role is a member of {role}")
    allowed = {_split(t) for t in tables}
    grants = (
        await conn.execute(
            text(
                "SELECT table_schema, table_name, privilege_type FROM information_schema.table_privileges "
                "WHERE grantee IN (current_user, 'PUBLIC') "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        )
    ).all()
    for schema, name, privilege in grants:
        if privilege != "SELECT" or (schema, name) not in allowed:
            raise ToolError(
                f"data source refused: its role holds {privilege} on {schema}.{name}, which is not a listed table"
            )


async def _run_postgres(url: str, tables: list[str], sql: str, max_rows: int, timeout_s: float) -> dict[str, Any]:
    engine = create_async_engine(normalise_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET TRANSACTION READ ONLY"))
            millis = max(100, int(timeout_s * 1000))
            await conn.execute(text(f"SET LOCAL statement_timeout = {millis}"))
            await conn.execute(text(f"SET LOCAL lock_timeout = {millis}"))
            await conn.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {millis * 2}"))
            await _check_pg_role(conn, tables)
            try:
                result = await conn.execute(text(sql))
                columns = list(result.keys())
                rows = [tuple(r) for r in result.fetchmany(max_rows + 1)]
            finally:
                await conn.rollback()
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - database errors are reported to the model
        raise ToolError(f"query failed: {getattr(exc, 'orig', exc)}") from exc
    finally:
        await engine.dispose()
    return _result(columns, rows, max_rows)


def _sqlite_path(url: str) -> str:
    path = unquote(urlsplit(normalise_url(url)).path)
    if path.startswith("//"):  # sqlite+aiosqlite:////abs/path -> //abs/path
        path = path[1:]
    elif path.startswith("/"):  # sqlite+aiosqlite:///rel/path -> rel/path
        path = path[1:]
    if not path or path == ":memory:":
        raise ToolError("an in-memory SQLite database cannot be a data source")
    return path


def _run_sqlite(url: str, tables: list[str], sql: str, max_rows: int, timeout_s: float) -> dict[str, Any]:
    path = _sqlite_path(url)
    allowed = {_split(t)[1].lower() for t in tables}
    denied: list[str] = []

    def authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, _trigger: str | None) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and db in ("main", None) and (arg1 or "").lower() in allowed:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SQLITE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == getattr(sqlite3, "SQLITE_RECURSIVE", 33):
            return sqlite3.SQLITE_OK
        denied.append(f"{action}:{arg1 or ''}:{arg2 or ''}")
        return sqlite3.SQLITE_DENY

    deadline = time.monotonic() + timeout_s
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ToolError(f"cannot open data source: {exc}") from exc
    try:
        conn.set_authorizer(authorizer)
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        try:
            cursor = conn.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(max_rows + 1)
        except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
            raise ToolError(f"query failed: {exc}") from exc
        except sqlite3.Error as exc:
            message = "statement timeout" if time.monotonic() > deadline else str(exc)
            raise ToolError(f"query failed: {message}") from exc
    finally:
        conn.close()
    return _result(columns, rows, max_rows)


def _result(columns: list[str], rows: list[Any], max_rows: int) -> dict[str, Any]:
    return {
        "columns": columns,
        "rows": [[_jsonable(v) for v in row] for row in rows[:max_rows]],
        "row_count": min(len(rows), max_rows),
        "truncated": len(rows) > max_rows,
    }


async def run_read_only(
    url: str,
    sql: str,
    max_rows: int,
    timeout_s: float,
    *,
    tables: list[str],
    lexical_check: bool = True,
) -> dict[str, Any]:
    """Run one query against a data source with only ``tables`` readable; columns and rows."""
    statement = check_read_only(sql) if lexical_check else sql
    check_tables(tables)
    if normalise_url(url).startswith("postgresql"):
        return await _run_postgres(url, tables, statement, max_rows, timeout_s)
    if normalise_url(url).startswith("sqlite"):
        return await asyncio.to_thread(_run_sqlite, url, tables, statement, max_rows, timeout_s)
    raise ToolError("only PostgreSQL and SQLite data sources are supported")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class SqlQueryTool(Tool):
    """Lets an agent read (never write) the declared tables of a configured database."""

    name = "sql_query"
    description = (
        "Run one read-only SQL query (SELECT/WITH) against a named data source and get columns and rows. "
        "Only the tables declared for the source can be read; write statements are refused."
    )
    parameters = {
        "type": "object",
        "properties": {
            "data_source": {"type": "string", "description": "Name of a configured data source."},
            "query": {"type": "string", "description": "A single SELECT statement.", "maxLength": 20_000},
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
        source = sources[name]
        if not source.tables:
            raise ToolError(f"data source {name!r} declares no tables")
        result = await run_read_only(
            source.url,
            args["query"],
            ctx.settings.sql_max_rows,
            min(self.timeout_s - 1, source.statement_timeout_seconds),
            tables=source.tables,
        )
        return {"data_source": name, "tables": source.tables, **result}
