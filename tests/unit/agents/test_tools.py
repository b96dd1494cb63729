"""Built-in tools and the registry: schemas, validation, timeouts, user tools, and the tools that
need no services (calculator, datetime, sql_query's read-only guard, http_request's allow-list)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentlightning.agents.tools.base import ToolContext, ToolError
from agentlightning.agents.tools.calculator import evaluate
from agentlightning.agents.tools.http_request import host_allowed
from agentlightning.agents.tools.registry import ToolRegistry, builtin_tools, default_registry, tool
from agentlightning.agents.tools.sql_query import check_read_only, run_read_only
from agentlightning.settings import Settings


@pytest.fixture
def tctx(tmp_path: Path) -> ToolContext:
    return ToolContext(settings=Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))  # type: ignore[call-arg]


def test_seven_builtins_with_valid_schemas_permissions_and_timeouts() -> None:
    tools = builtin_tools()
    assert sorted(t.name for t in tools) == sorted(
        ["calculator", "knowledge_search", "python", "sql_query", "http_request", "datetime", "memory"]
    )
    registry = ToolRegistry()
    for t in tools:
        registry.register(t)  # validates the JSON schema
        assert t.timeout_s > 0 and t.permission in {"read", "memory", "data", "network", "execute"}
    with pytest.raises(ValueError):
        registry.register(tools[0])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(3 + 4) * 2 ** 10", 7168),
        ("7 // 2 + 7 % 2", 4),
        ("sqrt(16) + abs(-2)", 6.0),
        ("2 ^ 3", 8),
        ("-(-5)", 5),
        ("round(pi, 2)", 3.14),
        ("max(1, 9, 3)", 9),
    ],
)
def test_calculator_evaluates(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('ls')",
        "open('/etc/passwd')",
        "9 ** 9 ** 9",
        "1 / 0",
        "x + 1",
        "[1, 2]",
        "factorial(10**6)",
        "'a' * 3",
        "(lambda: 1)()",
    ],
)
def test_calculator_refuses_anything_else(expression: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expression)


async def test_registry_validates_arguments_and_enforces_timeouts(tctx: ToolContext) -> None:
    registry = ToolRegistry()

    @tool(
        name="slow_echo",
        description="Echo after a pause",
        parameters={
            "type": "object",
            "properties": {"text": {"type": "string"}, "pause": {"type": "number"}},
            "required": ["text"],
            "additionalProperties": False,
        },
        timeout_s=0.2,
        registry=registry,
    )
    async def slow_echo(text: str, pause: float = 0.0) -> str:
        await asyncio.sleep(pause)
        return text

    ok = await registry.invoke("slow_echo", {"text": "hi"}, tctx)
    assert ok.ok and ok.output == "hi"
    invalid = await registry.invoke("slow_echo", {"text": 5, "extra": 1}, tctx)
    assert not invalid.ok and "invalid arguments" in invalid.error and "text" in invalid.error
    late = await registry.invoke("slow_echo", {"text": "hi", "pause": 2}, tctx)
    assert not late.ok and "timed out" in late.error
    forbidden = await registry.invoke("slow_echo", {"text": "hi"}, tctx, allowed=["calculator"])
    assert not forbidden.ok and "not permitted" in forbidden.error
    with pytest.raises(ValueError):  # parameters must be an object schema
        tool(name="bad", description="x", parameters={"type": "array"}, registry=registry)(lambda: 1)
    with pytest.raises(ValueError):  # and a valid JSON Schema
        tool(name="bad", description="x", parameters={"type": "object", "required": 5}, registry=registry)(lambda: 1)


async def test_user_tool_in_default_registry_with_context(tctx: ToolContext) -> None:
    @tool(
        name="word_count_test",
        description="Count words",
        parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    )
    def word_count(args: dict, ctx: ToolContext) -> int:
        return len(args["text"].split())

    try:
        result = await default_registry().invoke("word_count_test", {"text": "a b c"}, tctx)
        assert result.ok and result.output == 3 and '"result": 3' in result.for_model()
    finally:
        default_registry().unregister("word_count_test")


async def test_datetime_tool(tctx: ToolContext) -> None:
    registry = default_registry()
    added = await registry.invoke("datetime", {"operation": "add", "date": "2024-12-30", "days": 3}, tctx)
    assert added.ok and added.output["result"].startswith("2025-01-02")
    diff = await registry.invoke(
        "datetime", {"operation": "diff", "date": "2024-01-01", "other_date": "2024-03-01"}, tctx
    )
    assert diff.output["days"] == 60
    now = await registry.invoke("datetime", {"operation": "now", "timezone": "Europe/Paris"}, tctx)
    assert now.ok and "Europe/Paris" in now.output["timezone"]
    bad = await registry.invoke("datetime", {"operation": "now", "timezone": "Mars/Base"}, tctx)
    assert not bad.ok and "unknown time zone" in bad.error


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM t",
        "update t set a = 1",
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "select 1; drop table t",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT * INTO t2 FROM t",
        "PRAGMA writable_schema=1",
        "ATTACH DATABASE 'x.db' AS x",
        "CREATE TABLE z (a int)",
        "truncate t",
        "/* hi */ delete from t",
        "",
    ],
)
def test_sql_query_refuses_writes(sql: str) -> None:
    with pytest.raises(ToolError):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM sales",
        "select 'delete from t' as s",
        "WITH q AS (SELECT 1) SELECT * FROM q;",
        "EXPLAIN SELECT 1",
        "VALUES (1), (2)",
    ],
)
def test_sql_query_accepts_reads(sql: str) -> None:
    assert check_read_only(sql)


async def test_sql_query_reads_sqlite_and_the_connection_is_read_only(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "sales.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (region TEXT, amount INT)")
        conn.executemany("INSERT INTO sales VALUES (?, ?)", [("eu", 10), ("us", 20), ("eu", 5)])
    url = f"sqlite+aiosqlite:///{path}"
    result = await run_read_only(
        url, "SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY region", 10, 5, tables=["sales"]
    )
    assert result["columns"] == ["region", "total"] and result["rows"] == [["eu", 15], ["us", 20]]
    capped = await run_read_only(url, "SELECT * FROM sales", 2, 5, tables=["sales"])
    assert capped["truncated"] and capped["row_count"] == 2
    with pytest.raises(ToolError):
        await run_read_only(url, "DELETE FROM sales", 10, 5, tables=["sales"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 3


async def test_sql_tool_needs_a_named_source(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, sql_data_sources={"sales_db": f"sqlite+aiosqlite:///{tmp_path}/s.db"})  # type: ignore[call-arg]
    result = await default_registry().invoke(
        "sql_query", {"data_source": "other", "query": "SELECT 1"}, ToolContext(settings=settings)
    )
    assert not result.ok and "unknown data source" in result.error and "sales_db" in result.error
    disabled = await default_registry().invoke(
        "sql_query",
        {"data_source": "x", "query": "SELECT 1"},
        ToolContext(settings=Settings(_env_file=None)),  # type: ignore[call-arg]
    )
    assert not disabled.ok and "disabled" in disabled.error


async def test_http_request_is_off_by_default_and_allow_listed(tctx: ToolContext) -> None:
    off = await default_registry().invoke("http_request", {"url": "https://example.com"}, tctx)
    assert not off.ok and "disabled" in off.error
    assert host_allowed("api.example.com", ["*.example.com"]) and host_allowed("example.com", ["example.com"])
    assert not host_allowed("example.com.evil.net", ["example.com", "*.example.com"])
    settings = Settings(_env_file=None, http_tool_enabled=True, http_tool_allowed_hosts=["127.0.0.1"])  # type: ignore[call-arg]
    refused = await default_registry().invoke(
        "http_request", {"url": "http://localhost/"}, ToolContext(settings=settings)
    )
    assert not refused.ok and "allow-list" in refused.error
