"""``sql_query`` against PostgreSQL: reads work, and the read-only transaction stops a write that
gets past the lexical check (``nextval`` writes a sequence)."""

from __future__ import annotations

import asyncpg
import pytest

from agentlightning.agents.tools.base import ToolError
from agentlightning.agents.tools.sql_query import run_read_only


async def test_postgres_source_is_read_only(postgres_url: str) -> None:
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE SEQUENCE IF NOT EXISTS agl_sql_tool_seq")
        await conn.execute("CREATE TABLE IF NOT EXISTS agl_sql_tool_sales (region text, amount int)")
        await conn.execute("TRUNCATE agl_sql_tool_sales")
        await conn.execute("INSERT INTO agl_sql_tool_sales VALUES ('eu', 10), ('us', 20)")
    finally:
        await conn.close()
    rows = await run_read_only(postgres_url, "SELECT region, amount FROM agl_sql_tool_sales ORDER BY region", 10, 5)
    assert rows["rows"] == [["eu", 10], ["us", 20]]
    with pytest.raises(ToolError, match="read-only"):
        await run_read_only(postgres_url, "SELECT nextval('agl_sql_tool_seq')", 10, 5)
    with pytest.raises(ToolError):
        await run_read_only(postgres_url, "DELETE FROM agl_sql_tool_sales", 10, 5)
    with pytest.raises(ToolError, match="statement timeout|canceling"):
        await run_read_only(postgres_url, "SELECT pg_sleep(3)", 10, 0.5)
