"""Workflow throughput: 1,000 concurrent runs of a 3-step workflow, end to end.

Starts ``agentlightning serve`` (the workflow engine, no in-process workers) on a fresh
PostgreSQL database with Redis, an instant scripted OpenAI-compatible LLM
(``tests/fake_llm_server.py``, its own process) and 2 ``agentlightning worker`` processes.  A
workflow of three chained agent steps (``a -> b -> c``, each templated from the previous output)
is started N times over HTTP (32 requests in flight); the clock runs from the first ``execute``
until the last run is ``completed``.

It also prints the engine's scheduling latency per step, p50/p95: from the moment a step became
ready (the run's creation for ``a``; the previous step's task finishing for ``b`` and ``c``) to the
moment the engine queued its task, from the rows' timestamps: under the burst (where it includes
the wait behind the backlog of 1,000 runs) and for 20 runs started one at a time afterwards (the
engine's own reaction time).

The last line is ``workflow_runs_per_s=<value>``.

    python benchmarks/workflow_throughput.py [--runs 1000]

Env: ``AGL_TEST_PG_DSN`` (admin DSN, default postgresql://postgres@127.0.0.1:5432/postgres),
``AGL_TEST_REDIS_URL`` (default redis://127.0.0.1:6379); a Redis database is locked for the run
(:class:`tests.services.RedisSlot`) and events use a unique channel prefix.  ``AGL_BENCH_LOG_DIR``
keeps the server's log there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import CLI, PG_ADMIN_DSN, ChildServer, free_port, pg_admin, start_worker  # noqa: E402
from tests.services import RedisSlot  # noqa: E402

ADMIN_PASSWORD = "bench-admin-password-long"
IN_FLIGHT = 32
WORKERS = 2
STEPS = ("a", "b", "c")


def _definition(agent: str) -> dict[str, object]:
    return {
        "steps": [
            {"id": "a", "kind": "agent", "agent": agent, "task": "first {{ input.n }}"},
            {"id": "b", "kind": "agent", "agent": agent, "depends_on": ["a"], "task": "second {{ steps.a }}"},
            {"id": "c", "kind": "agent", "agent": agent, "depends_on": ["b"], "task": "third {{ steps.b }}"},
        ],
        "output": "{{ steps.c }}",
    }


async def _one_at_a_time(base_url: str, dsn: str, n_runs: int) -> None:
    """Runs started one after another (each waited for): the engine's latency without a backlog."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        login = await http.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        listing = await http.get("/api/v2/workflows", headers=headers)
        workflow_id = listing.json()["data"]["items"][0]["id"]
        for i in range(n_runs):
            started = await http.post(
                f"/api/v2/workflows/{workflow_id}/execute", json={"input": {"n": i}}, headers=headers
            )
            run_id = started.json()["data"]["run_id"]
            deadline = time.monotonic() + 120
            while True:
                run = (await http.get(f"/api/v2/workflow-runs/{run_id}", headers=headers)).json()["data"]
                if run["status"] in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"run {run_id} still {run['status']}")
                await asyncio.sleep(0.05)


async def _run(base_url: str, dsn: str, n_runs: int) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        login = await http.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        agent = f"wfbench_{uuid.uuid4().hex[:6]}"
        created = await http.post(
            "/api/v2/agents",
            json={"name": agent, "type": "wfbench", "config": {"cache": False, "max_concurrency": 64}},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        workflow = await http.post(
            "/api/v2/workflows", json={"name": f"bench_{agent}", **_definition(agent)}, headers=headers
        )
        assert workflow.status_code == 201, workflow.text
        workflow_id = workflow.json()["data"]["id"]
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def execute(i: int) -> None:
            async with gate:
                response = await http.post(
                    f"/api/v2/workflows/{workflow_id}/execute", json={"input": {"n": i}}, headers=headers
                )
                assert response.status_code == 202, response.text

        started = time.perf_counter()
        await asyncio.gather(*(execute(i) for i in range(n_runs)))
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 1800
        while True:
            done = await conn.fetchval("SELECT count(*) FROM workflow_runs WHERE status = 'completed'")
            failed = await conn.fetchval("SELECT count(*) FROM workflow_runs WHERE status IN ('failed', 'cancelled')")
            if failed:
                errors = await conn.fetch(
                    "SELECT error FROM workflow_runs WHERE status IN ('failed', 'cancelled') LIMIT 5"
                )
                raise RuntimeError(f"{failed} run(s) failed: {[r['error'] for r in errors]}")
            if done >= n_runs:
                return time.perf_counter() - started
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {n_runs} runs completed")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _latencies(dsn: str, after_run: int = 0) -> tuple[dict[str, list[float]], list[float]]:
    """Seconds from a step becoming ready to its task being queued, per step (runs after ``after_run``)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT s.run_id, s.step_id, r.created_at AS run_created, t.created_at AS queued, t.completed_at AS done,
                   s.completed_at AS noticed
            FROM workflow_steps s
            JOIN workflow_runs r ON r.id = s.run_id
            JOIN tasks t ON t.id = s.task_id
            WHERE s.run_id > $1
            """,
            after_run,
        )
    finally:
        await conn.close()
    by_run: dict[int, dict[str, asyncpg.Record]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], {})[row["step_id"]] = row
    out: dict[str, list[float]] = {s: [] for s in STEPS}
    notice: list[float] = []
    for steps in by_run.values():
        for step in STEPS:
            if step in steps and steps[step]["noticed"] is not None:
                notice.append((steps[step]["noticed"] - steps[step]["done"]).total_seconds())
        for i, step in enumerate(STEPS):
            if step not in steps:
                continue
            ready = steps[step]["run_created"] if i == 0 else steps[STEPS[i - 1]]["done"]
            out[step].append((steps[step]["queued"] - ready).total_seconds())
    return out, notice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--one-at-a-time", type=int, default=20, help="runs started sequentially afterwards")
    args = parser.parse_args()
    db_name = f"agl_bench_wf_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{db_name}"'))
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    dsn = f"{base}/{db_name}"
    redis_slot = RedisSlot()
    redis_url = redis_slot.acquire()
    load_before = os.getloadavg()[0]
    try:
        llm_port = free_port()
        llm_cmd = [sys.executable, "-m", "tests.fake_llm_server", "--port", str(llm_port)]
        with (
            ChildServer(llm_cmd, f"http://127.0.0.1:{llm_port}/v1/models"),
            tempfile.TemporaryDirectory(prefix="agl-bench-wf-") as tmp,
        ):
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
                "REDIS_URL": redis_url,
                "AGL_EVENTS_PREFIX": f"aglwfbench{uuid.uuid4().hex[:6]}",
                "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "AGENT_WORKERS_IN_API": "false",
                "AGENT_POLL_INTERVAL_SECONDS": "0.5",
                "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
                "LLM_MODEL": "fake-model",
                "RATE_LIMIT_DEFAULT": "1000000/minute",
                "RATE_LIMIT_ANONYMOUS": "1000000/minute",
                "PYTHONPATH": str(ROOT / "src"),
            }
            base_url = f"http://127.0.0.1:{port}"
            with ChildServer(
                [*CLI, "serve", "--port", str(port), "--log-level", "warning"],
                f"{base_url}/api/v2/health",
                env=env,
                log=Path(os.environ.get("AGL_BENCH_LOG_DIR", tmp)) / "server.log",
            ):
                workers = [start_worker(env, Path(tmp) / f"worker{i}.log", ready_timeout=90) for i in range(WORKERS)]
                try:
                    elapsed = asyncio.run(_run(base_url, dsn, args.runs))
                    latencies, notice = asyncio.run(_latencies(dsn))
                    asyncio.run(_one_at_a_time(base_url, dsn, args.one_at_a_time))
                    quiet, _ = asyncio.run(_latencies(dsn, after_run=args.runs))
                finally:
                    for proc in workers:
                        proc.terminate()
                    for proc in workers:
                        try:
                            proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                            proc.kill()
    finally:
        redis_slot.release()
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    rate = args.runs / elapsed
    print(f"runs={args.runs} steps_per_run={len(STEPS)} workers={WORKERS} load_before={load_before:.2f}")
    print(f"elapsed_s={elapsed:.2f} tasks_per_s={args.runs * len(STEPS) / elapsed:.1f}")
    for step in STEPS:
        values = [v * 1000 for v in latencies[step]]
        print(
            f"scheduling_latency_ms step={step} n={len(values)} p50={_pct(values, 0.5):.1f} p95={_pct(values, 0.95):.1f}"
        )
    notice_ms = [v * 1000 for v in notice]
    print(f"task_done_to_step_done_ms p50={_pct(notice_ms, 0.5):.1f} p95={_pct(notice_ms, 0.95):.1f}")
    every = [v * 1000 for step in STEPS for v in latencies[step]]
    print(f"scheduling_latency_ms all p50={_pct(every, 0.5):.1f} p95={_pct(every, 0.95):.1f}")
    for step in STEPS:
        values = [v * 1000 for v in quiet[step]]
        print(
            f"one_at_a_time_scheduling_latency_ms step={step} n={len(values)} "
            f"p50={_pct(values, 0.5):.1f} p95={_pct(values, 0.95):.1f}"
        )
    print(f"workflow_runs_per_s={rate:.2f}")


if __name__ == "__main__":
    main()
