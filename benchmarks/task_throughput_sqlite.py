"""Task throughput on the embedded default: SQLite, in-process cache and event bus, the worker pool
inside ``serve``.

Starts ``agentlightning serve`` on a fresh SQLite file with an instant scripted OpenAI-compatible
LLM (``tests/fake_llm_server.py``, its own process), assigns ``--tasks`` tasks over HTTP (16 in
flight) and stops the clock when the last one is finished, :data:`REPEATS` times (the median
counts), after a warm-up.  It prints tasks per second, the server's CPU milliseconds per task
(the API and the worker share that process) and the assigns' response times, and its last line is
``sqlite_tasks_per_second=<median>``.  ``--src`` measures another checkout (before and after).

    python benchmarks/task_throughput_sqlite.py [--tasks 600] [--max 8] [--src other/src]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import CLI, ChildServer, free_port  # noqa: E402
from benchmarks.task_throughput import ADMIN_PASSWORD, _assign_many, _bench_agent, _connector  # noqa: E402

REPEATS = 3


async def _run(base_url: str, headers: dict[str, str], n_tasks: int, latencies: list[float] | None = None) -> float:
    """Assign ``n_tasks`` to a new agent and wait until all are finished; tasks per second (each
    assign's response time is appended to ``latencies``)."""
    async with aiohttp.ClientSession(base_url, headers=headers, connector=_connector()) as http:
        agent_id = await _bench_agent(http)
        started = time.perf_counter()
        await _assign_many(http, agent_id, n_tasks, "sqlite task", latencies)
        while True:
            finished = 0
            for status in ("completed", "failed"):
                params = {"agent": str(agent_id), "status": status, "page_size": "1"}
                async with http.get("/api/v2/tasks", params=params) as response:
                    total = int((await response.json())["data"]["total"])
                if status == "failed" and total:
                    raise RuntimeError(f"{total} benchmark tasks failed")
                finished += total
            if finished >= n_tasks:
                return n_tasks / (time.perf_counter() - started)
            await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--max", type=int, default=8, help="the worker's tasks in flight (AGENT_WORKERS_MAX)")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="source tree the server runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agl-bench-sqlite-") as tmp:
        llm_port = free_port()
        llm = [sys.executable, "-m", "tests.fake_llm_server", "--port", str(llm_port)]
        with ChildServer(llm, f"http://127.0.0.1:{llm_port}/v1/models"):
            port = free_port()
            env = {
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/agl.db",
                "AGL_DATA_DIR": tmp,
                "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
                "LLM_MODEL": "fake-model",
                "AGENT_WORKERS_MAX": str(args.max),
                "RATE_LIMIT_DEFAULT": "1000000/minute",
                "PYTHONPATH": str(args.src.resolve()),
            }
            base_url = f"http://127.0.0.1:{port}"
            serve = [*CLI, "serve", "--port", str(port), "--log-level", "warning"]
            with ChildServer(serve, f"{base_url}/api/v2/health", env=env, log=Path(tmp) / "server.log") as server:
                assert server.process is not None
                login = httpx.post(f"{base_url}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
                headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
                asyncio.run(_run(base_url, headers, max(1, args.tasks // 5)))  # warm-up
                process = psutil.Process(server.process.pid)
                cpu_before = sum(process.cpu_times()[:2])
                latencies: list[float] = []
                rates = [asyncio.run(_run(base_url, headers, args.tasks, latencies)) for _ in range(REPEATS)]
                cpu_ms = (sum(process.cpu_times()[:2]) - cpu_before) * 1000 / (args.tasks * REPEATS)
    print(
        f"tasks={args.tasks} repeats={REPEATS} worker_max={args.max} src={args.src} cpus={os.cpu_count()} "
        f"runs={[round(r, 1) for r in rates]} server_cpu_ms_per_task={cpu_ms:.2f}"
    )
    cuts = statistics.quantiles(latencies, n=100)
    print(f"assign response time while the worker runs: p50={cuts[49] * 1000:.1f} ms p95={cuts[94] * 1000:.1f} ms")
    print(f"sqlite_tasks_per_second={statistics.median(rates):.1f}")


if __name__ == "__main__":
    main()
