"""``sql_query`` is read-only by the database's own rights, on PostgreSQL and SQLite.

PostgreSQL: the data source is this test session's own platform database (it has ``users`` with
password hashes) reached through a reader role that may only SELECT one data table. Most attacks
are tried twice: through the tool (lexical pre-check included) and with the pre-check switched
off, so the database's refusal is what is tested.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from agentlightning.agents.tools.base import ToolContext, ToolError
from agentlightning.agents.tools.registry import default_registry
from agentlightning.agents.tools.sql_query import run_read_only
from agentlightning.agents.tools.sql_roles import create_reader_role, drop_reader_role
from agentlightning.settings import Settings


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def pg_source(postgres_url: str) -> AsyncIterator[tuple[str, str, str]]:
    """(reader URL, data table, admin DSN): a reader role that may only read one table."""
    table = f"agl_sales_{uuid.uuid4().hex[:8]}"
    role = f"agl_reader_{uuid.uuid4().hex[:8]}"
    admin = _dsn(postgres_url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f"CREATE TABLE {table} (region text, amount int)")
        await conn.execute(f"INSERT INTO {table} VALUES ('eu', 10), ('us', 20)")
        await conn.execute(f"CREATE SEQUENCE {table}_seq")
    finally:
        await conn.close()
    await create_reader_role(admin, role, "reader-password", [table])
    parts = urlsplit(admin)
    reader = urlunsplit(
        (parts.scheme, f"{role}:reader-password@{parts.hostname}:{parts.port or 5432}", parts.path, "", "")
    )
    try:
        yield reader, table, admin
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(f"DROP SEQUENCE IF EXISTS {table}_seq")
        finally:
            await conn.close()
        await drop_reader_role(admin, role)


async def query(url: str, table: str, sql: str, *, lexical: bool = True) -> dict:
    return await run_read_only(url, sql, 50, 3.0, tables=[table], lexical_check=lexical)


async def test_listed_table_is_readable(pg_source: tuple[str, str, str]) -> None:
    url, table, _ = pg_source
    result = await query(url, table, f"SELECT region, amount FROM {table} ORDER BY region")
    assert result["rows"] == [["eu", 10], ["us", 20]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM users",
        "SELECT username, password_hash FROM public.users",
        "SELECT * FROM agents",
        "SELECT rolpassword FROM pg_authid",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_advisory_lock(42)",
        "SELECT pg_try_advisory_lock(1, 2)",
        "SELECT pg_advisory_xact_lock(42)",
        "SELECT nextval('{table}_seq')",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "INSERT INTO {table} VALUES ('x', 1)",
        "UPDATE {table} SET amount = 0",
        "DELETE FROM {table}",
        "DROP TABLE {table}",
        "CREATE TEMP TABLE t AS SELECT 1",
        "COPY {table} TO STDOUT",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "COPY {table} FROM '/etc/passwd'",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "RESET ROLE",
        "GRANT SELECT ON users TO PUBLIC",
        "SELECT 1; DELETE FROM {table}",
        "SELECT 1; SELECT * FROM users",
        "WITH d AS (DELETE FROM {table} RETURNING *) SELECT * FROM d",
    ],
)
@pytest.mark.parametrize("lexical", [True, False], ids=["tool", "database-only"])
async def test_postgres_refuses(pg_source: tuple[str, str, str], sql: str, lexical: bool) -> None:
    url, table, admin = pg_source
    with pytest.raises(ToolError):
        await query(url, table, sql.format(table=table), lexical=lexical)
    conn = await asyncpg.connect(admin)
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 2
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    finally:
        await conn.close()


async def test_cannot_terminate_the_platforms_connections(pg_source: tuple[str, str, str]) -> None:
    url, table, admin = pg_source
    platform = await asyncpg.connect(admin)
    try:
        pid = platform.get_server_pid()
        for lexical in (True, False):
            with pytest.raises(ToolError):
                await query(url, table, f"SELECT pg_terminate_backend({pid})", lexical=lexical)
            with pytest.raises(ToolError):
                await query(url, table, f"SELECT pg_cancel_backend({pid})", lexical=lexical)
        assert await platform.fetchval("SELECT 1") == 1
    finally:
        await platform.close()


async def test_statement_timeout(pg_source: tuple[str, str, str]) -> None:
    url, table, _ = pg_source
    with pytest.raises(ToolError, match="statement timeout|canceling"):
        await run_read_only(url, "SELECT pg_sleep(10)", 10, 0.5, tables=[table])


async def test_a_privileged_or_over_granted_source_is_refused(
    pg_source: tuple[str, str, str], postgres_url: str
) -> None:
    _, table, admin = pg_source
    with pytest.raises(ToolError, match="privileged"):
        await query(postgres_url, table, f"SELECT * FROM {table}")
    # A reader that was also granted a platform table: the tool refuses the whole source.
    url = pg_source[0]
    role = urlsplit(url).username
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'GRANT SELECT ON users TO "{role}"')
    finally:
        await conn.close()
    with pytest.raises(ToolError, match="not a listed table"):
        await query(url, table, f"SELECT * FROM {table}")


async def test_platform_tables_cannot_be_declared(pg_source: tuple[str, str, str]) -> None:
    url, _, _ = pg_source
    with pytest.raises(ToolError, match="platform's own tables"):
        await run_read_only(url, "SELECT * FROM users", 10, 3, tables=["users"])


# --- SQLite -----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_source(tmp_path: Path) -> str:
    """A SQLite file holding a data table and a copy of the platform's ``users`` table."""
    path = tmp_path / "data.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (region TEXT, amount INT)")
        conn.executemany("INSERT INTO sales VALUES (?, ?)", [("eu", 10), ("us", 20)])
        conn.execute("CREATE TABLE users (username TEXT, password_hash TEXT)")
        conn.execute("INSERT INTO users VALUES ('admin', '$2b$12$secret-hash')")
        conn.execute("CREATE TABLE other (x)")
    (tmp_path / "attach.db").write_bytes(b"")
    return f"sqlite+aiosqlite:///{path}"


async def test_sqlite_listed_table_is_readable(sqlite_source: str) -> None:
    result = await run_read_only(
        sqlite_source, "SELECT region, SUM(amount) FROM sales GROUP BY region ORDER BY 1", 10, 3, tables=["sales"]
    )
    assert result["rows"] == [["eu", 10], ["us", 20]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM users",
        "SELECT * FROM other",
        "SELECT name, sql FROM sqlite_master",
        "SELECT * FROM sales, users",
        "SELECT (SELECT password_hash FROM users)",
        "ATTACH DATABASE '{dir}/attach.db' AS x",
        "ATTACH DATABASE ':memory:' AS x",
        "PRAGMA table_info(users)",
        "SELECT * FROM pragma_table_info('users')",
        "SELECT load_extension('/tmp/evil.so')",
        "INSERT INTO sales VALUES ('x', 1)",
        "DELETE FROM sales",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t AS SELECT 1",
        "DROP TABLE sales",
        "SELECT 1; DELETE FROM sales",
        "VACUUM INTO '{dir}/copy.db'",
    ],
)
@pytest.mark.parametrize("lexical", [True, False], ids=["tool", "database-only"])
async def test_sqlite_refuses(sqlite_source: str, sql: str, lexical: bool, tmp_path: Path) -> None:
    with pytest.raises(ToolError):
        await run_read_only(sqlite_source, sql.format(dir=tmp_path), 10, 3, tables=["sales"], lexical_check=lexical)
    with sqlite3.connect(tmp_path / "data.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 2
    assert not (tmp_path / "copy.db").exists()


async def test_sqlite_runaway_query_is_stopped(sqlite_source: str) -> None:
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    with pytest.raises(ToolError, match="timeout|interrupted"):
        await run_read_only(sqlite_source, forever, 10, 0.5, tables=["sales"])


async def test_tool_needs_declared_tables(sqlite_source: str) -> None:
    legacy = Settings(_env_file=None, sql_data_sources={"db": sqlite_source})  # type: ignore[call-arg]
    refused = await default_registry().invoke(
        "sql_query", {"data_source": "db", "query": "SELECT * FROM sales"}, ToolContext(settings=legacy)
    )
    assert not refused.ok and "declares no tables" in (refused.error or "")
    declared = Settings(_env_file=None, sql_data_sources={"db": {"url": sqlite_source, "tables": ["sales"]}})  # type: ignore[call-arg]
    ok = await default_registry().invoke(
        "sql_query", {"data_source": "db", "query": "SELECT COUNT(*) FROM sales"}, ToolContext(settings=declared)
    )
    assert ok.ok and ok.output["rows"] == [[2]]
    stolen = await default_registry().invoke(
        "sql_query", {"data_source": "db", "query": "SELECT * FROM users"}, ToolContext(settings=declared)
    )
    assert not stolen.ok and "secret-hash" not in str(stolen)
