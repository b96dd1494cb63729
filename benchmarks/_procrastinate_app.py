"""The Procrastinate side of ``task_throughput.py``: a PostgreSQL-backed job that makes the same
HTTP call to the scripted LLM as an agent task.

Configured by environment: ``BENCH_PG_DSN`` (libpq DSN of the benchmark database) and
``BENCH_LLM_URL``.  The benchmark applies the schema, defers jobs, and runs
``procrastinate --app=benchmarks._procrastinate_app.app worker --concurrency 16``.
"""

from __future__ import annotations

import os

import httpx
import procrastinate

DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
LLM_URL = os.environ.get("BENCH_LLM_URL", "http://127.0.0.1:9999/v1")

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=DSN))
_http: httpx.AsyncClient | None = None


@app.task(name="bench.run_agent_task", queue="bench")
async def run_agent_task(description: str) -> None:
    """One chat completion, like an agent task without tools."""
    global _http
    if _http is None:
        _http = httpx.AsyncClient(base_url=LLM_URL, timeout=30)
    r = await _http.post(
        "/chat/completions",
        json={"model": "fake-model", "messages": [{"role": "user", "content": description}]},
    )
    r.raise_for_status()
