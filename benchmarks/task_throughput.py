"""Task throughput: assign -> claim -> run -> complete, end to end, against a raw asyncpg floor.

Starts ``agentlightning serve`` (no in-process workers) on a fresh PostgreSQL database with
Redis, an instant scripted OpenAI-compatible LLM (``tests/fake_llm_server.py``, its own
process), and 1 then 2
``agentlightning worker`` processes.  For each, N tasks are assigned over HTTP (16 in flight)
and the clock stops when the last one is ``completed``.  In the same run a raw asyncpg loop
(INSERT one row per task; claim with ``FOR UPDATE SKIP LOCKED``; UPDATE the result) on the same
database gives the floor.  The last line is ``task_overhead_ratio=<raw tps / ours>``, where
"ours" is the better of the 1- and 2-worker figures.

    python benchmarks/task_throughput.py [--tasks 300]

Env: ``AGL_TEST_PG_DSN`` (admin DSN, default postgresql://postgres@127.0.0.1:5432/postgres),
``AGL_TEST_REDIS_URL`` (default redis://127.0.0.1:6379).  Redis: a numbered database is locked for
the run with the test suite's scheme (:class:`tests.services.RedisSlot`), and events use a unique
channel prefix, so a concurrent test run or benchmark is never clobbered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
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

from benchmarks._common import ChildServer, free_port  # noqa: E402
from tests.services import RedisSlot  # noqa: E402

PG_ADMIN_DSN = os.environ.get("AGL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CLI = [sys.executable, "-m", "agentlightning.cli"]
ADMIN_PASSWORD = "bench-admin-password-long"
IN_FLIGHT = 16
CONSUMERS = 8


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    proc = subprocess.Popen(
        [*CLI, "worker", "--min", "4", "--max", "16"], env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker failed to start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return proc


async def _assign_only(base_url: str, n_tasks: int, headers: dict[str, str]) -> tuple[int, float]:
    """Queue ``n_tasks`` over HTTP with no worker running; returns (agent id, assigns per second)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        created = await http.post(
            "/api/v2/agents",
            json={
                "name": f"bench_{uuid.uuid4().hex[:6]}",
                "type": "bench",
                "config": {"max_concurrency": 64, "cache": False},
            },
            headers=headers,
        )
        created.raise_for_status()
        agent_id = created.json()["data"]["id"]
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def assign(i: int) -> None:
            async with gate:
                r = await http.post(
                    "/api/v2/agents/assign", json={"task": f"queued {i}", "agent_id": agent_id}, headers=headers
                )
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(assign(i) for i in range(n_tasks)))
        return agent_id, n_tasks / (time.perf_counter() - started)


async def _drain(dsn: str, agent_id: int, n_tasks: int) -> float:
    """Wait until the agent's queued tasks are done; returns tasks per second from now."""
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    while (
        await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE agent_id = $1 AND status IN ('completed', 'failed')", agent_id
        )
        < n_tasks
    ):
        await asyncio.sleep(0.02)
    await conn.close()
    return n_tasks / (time.perf_counter() - started)


async def _ours(base_url: str, dsn: str, n_tasks: int, headers: dict[str, str]) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        name = f"bench_{uuid.uuid4().hex[:6]}"
        created = await http.post(
            "/api/v2/agents",
            json={"name": name, "type": "bench", "config": {"max_concurrency": 64, "cache": False}},
            headers=headers,
        )
        created.raise_for_status()
        agent_id = created.json()["data"]["id"]
        conn = await asyncpg.connect(dsn)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def assign(i: int) -> None:
            async with gate:
                r = await http.post(
                    "/api/v2/agents/assign", json={"task": f"bench task {i}", "agent_id": agent_id}, headers=headers
                )
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(assign(i) for i in range(n_tasks)))
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE agent_id = $1 AND status IN ('completed', 'failed')", agent_id
            )
            if done >= n_tasks:
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        failed = await conn.fetchval("SELECT count(*) FROM tasks WHERE agent_id = $1 AND status = 'failed'", agent_id)
        await conn.close()
        if failed:
            raise RuntimeError(f"{failed} benchmark tasks failed")
        return n_tasks / elapsed


async def _raw_floor(dsn: str, n_tasks: int) -> float:
    """Insert each task, claim it with SKIP LOCKED, write its result: the same shape, no platform."""
    pool = await asyncpg.create_pool(dsn, min_size=CONSUMERS + 1, max_size=CONSUMERS + 1)
    await pool.execute(
        "CREATE TABLE raw_tasks (id serial PRIMARY KEY, description text NOT NULL, status text NOT NULL DEFAULT 'pending', "
        "priority int NOT NULL DEFAULT 1, result jsonb, created_at timestamptz DEFAULT now(), started_at timestamptz, "
        "completed_at timestamptz)"
    )
    await pool.execute("CREATE INDEX ON raw_tasks (status, priority, id)")
    done = 0
    produced = asyncio.Event()

    async def produce() -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with gate:
                await pool.execute("INSERT INTO raw_tasks (description) VALUES ($1)", f"bench task {i}")

        await asyncio.gather(*(one(i) for i in range(n_tasks)))
        produced.set()

    async def consume() -> None:
        nonlocal done
        while done < n_tasks:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(
                    "UPDATE raw_tasks SET status = 'running', started_at = now() WHERE id = ("
                    "SELECT id FROM raw_tasks WHERE status = 'pending' ORDER BY priority DESC, id "
                    "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, description"
                )
                if row is None:
                    await asyncio.sleep(0.001)
                    continue
                await conn.execute(
                    "UPDATE raw_tasks SET status = 'completed', completed_at = now(), result = $2 WHERE id = $1",
                    row["id"],
                    json.dumps({"answer": f"Answer: {row['description']}"}),
                )
                done += 1

    started = time.perf_counter()
    await asyncio.gather(produce(), *(consume() for _ in range(CONSUMERS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return n_tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    args = parser.parse_args()
    db_name = f"agl_bench_tasks_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{db_name}"'))
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    dsn = f"{base}/{db_name}"
    results: dict[str, float] = {}
    redis_slot = RedisSlot()
    redis_url = redis_slot.acquire()
    try:
        llm_port = free_port()
        llm_cmd = [sys.executable, "-m", "tests.fake_llm_server", "--port", str(llm_port)]
        # The scripted LLM runs in its own process so it does not share this process's GIL.
        with (
            ChildServer(llm_cmd, f"http://127.0.0.1:{llm_port}/v1/models"),
            tempfile.TemporaryDirectory(prefix="agl-bench-") as tmp,
        ):
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
                "REDIS_URL": redis_url,
                "AGL_EVENTS_PREFIX": f"aglbench{uuid.uuid4().hex[:6]}",
                "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "AGENT_WORKERS_IN_API": "false",
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
                log=Path(tmp) / "server.log",
            ):
                login = httpx.post(f"{base_url}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
                headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
                for n_workers in (1, 2):
                    # Phases apart, to show where the time goes: HTTP assign alone, then the drain.
                    agent_id, assign_rate = asyncio.run(_assign_only(base_url, args.tasks, headers))
                    workers = [_start_worker(env, Path(tmp) / f"w{n_workers}-{i}.log") for i in range(n_workers)]
                    try:
                        drain_rate = asyncio.run(_drain(dsn, agent_id, args.tasks))
                        print(
                            f"assign_only_{n_workers}_per_second={assign_rate:.1f} "
                            f"drain_{n_workers}_worker_tasks_per_second={drain_rate:.1f}",
                            flush=True,
                        )
                        asyncio.run(_ours(base_url, dsn, args.tasks // 5, headers))  # warm-up
                        tps = asyncio.run(_ours(base_url, dsn, args.tasks, headers))
                    finally:
                        for w in workers:
                            w.send_signal(signal.SIGTERM)
                        for w in workers:
                            w.wait(timeout=30)
                    results[f"{n_workers}_worker"] = tps
                    print(f"ours_{n_workers}_worker_tasks_per_second={tps:.1f}", flush=True)
        raw = asyncio.run(_raw_floor(dsn, args.tasks))
        print(f"raw_asyncpg_tasks_per_second={raw:.1f}", flush=True)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        redis_slot.release()
    ours = max(results.values())
    print(
        f"tasks={args.tasks} in_flight_assigns={IN_FLIGHT} cpus={os.cpu_count()} "
        f"load_average_1m={os.getloadavg()[0]:.1f}"
    )
    print(
        f"summary: ours_1_worker={results['1_worker']:.1f} ours_2_worker={results['2_worker']:.1f} "
        f"raw_floor={raw:.1f} (tasks/s)"
    )
    print(f"task_overhead_ratio={raw / ours:.2f}")


if __name__ == "__main__":
    main()
