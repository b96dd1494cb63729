"""The task pipeline across real processes on PostgreSQL + Redis.

``agentlightning serve`` (no in-process workers) plus two ``agentlightning worker`` processes and
a scripted OpenAI-compatible LLM.  200 tasks are assigned over HTTP while a WebSocket client
listens; one worker is killed with SIGKILL while it holds leases, and two busy processes keep
every core saturated meanwhile (the test starts and stops them).  Every task must end
``completed`` exactly once, and the WebSocket client must see one ``task_completed`` per task:
a task taken over after its lease expired still produces its event (the outbox), and leases are
renewed off the busy event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from tests.e2e.server import ServerProcess, admin_with_agent, start_worker
from tests.fake_llm_server import FakeLLMServer
from tests.redis_server import free_port
from tests.services import create_postgres_database, drop_postgres_database

ADMIN_PASSWORD = "e2e-admin-password-long"
TASKS = 200
CPU_HOGS = 2


@contextlib.contextmanager
def cpu_hogs(count: int = CPU_HOGS) -> Any:
    """``count`` processes spinning on a core each, for the duration of the block."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


async def _running_leases_of(dsn: str, pid: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE status = 'running' AND lease_owner LIKE $1", f"%:{pid}:%"
            )
        )
    finally:
        await conn.close()


async def _scenario(server: ServerProcess, dsn: str, victim: subprocess.Popen[bytes]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        token, headers, name = await admin_with_agent(http, ADMIN_PASSWORD, "e2e", max_concurrency=16)

        completed: Counter[int] = Counter()
        failed: list[Any] = []
        ws_url = server.url.replace("http://", "ws://") + f"/ws/agents?token={token}"
        async with websockets.connect(ws_url, max_queue=None) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send(
                json.dumps({"action": "subscribe", "agent_id": name, "events": ["task_completed", "task_failed"]})
            )
            assert json.loads(await ws.recv())["type"] == "subscribed"

            async def listen() -> None:
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") != "event":
                        continue
                    if message["event"] == "task_completed":
                        completed[message["data"]["task_id"]] += 1
                    else:
                        failed.append(message["data"])

            listener = asyncio.create_task(listen())
            gate = asyncio.Semaphore(16)

            async def assign(i: int) -> int:
                async with gate:
                    response = await http.post(
                        "/api/v2/agents/assign",
                        json={
                            "task": f"task number {i}",
                            "agent_id": name,
                            "priority": ["low", "medium", "high"][i % 3],
                        },
                        headers=headers | {"Idempotency-Key": f"{name}-{i}"},
                    )
                    assert response.status_code == 202, response.text
                    return int(response.json()["task_id"])

            ids = await asyncio.gather(*(assign(i) for i in range(TASKS)))
            # Kill one worker while it holds leases (tasks in flight).
            deadline = time.monotonic() + 60
            while await _running_leases_of(dsn, victim.pid) == 0:
                assert time.monotonic() < deadline, "the victim worker never held a task"
                await asyncio.sleep(0.05)
            held = await _running_leases_of(dsn, victim.pid)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed_after = len(completed)

            deadline = time.monotonic() + 300
            while len(completed) < TASKS and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # any duplicate event would arrive now
            listener.cancel()

        listing = await http.get("/api/v2/tasks", params={"agent": name, "page_size": 500}, headers=headers)
        tasks = listing.json()["data"]["items"]
    return {
        "ids": ids,
        "completed": completed,
        "failed": failed,
        "tasks": tasks,
        "held": held,
        "killed_after": killed_after,
    }


@pytest.mark.slow
def test_200_tasks_two_workers_one_killed(tmp_path: Path, redis_url: str) -> None:
    database = create_postgres_database("agl_e2e_agents")
    dsn = database.replace("postgresql+asyncpg://", "postgresql://")
    with FakeLLMServer(delay_s=0.15) as llm:
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "AGL_EVENTS_PREFIX": f"agle2e{uuid.uuid4().hex[:6]}",
            "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AGENT_WORKERS_IN_API": "false",
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": "fake-model",
            # Sized for a saturated machine: renewals every lease/4 from the lease keeper's thread.
            "AGENT_TASK_LEASE_SECONDS": "6",
            "AGENT_POLL_INTERVAL_SECONDS": "0.2",
            "RATE_LIMIT_DEFAULT": "100000/minute",
            "RATE_LIMIT_ANONYMOUS": "100000/minute",
        }
        server = ServerProcess(env, tmp_path / "server.log")
        workers: list[subprocess.Popen[bytes]] = []
        try:
            server.start()
            metrics_port = free_port()
            workers = [
                start_worker(server.env, tmp_path / "worker0.log", "--min", "1", "--max", "4", timeout=60),
                start_worker(
                    server.env,
                    tmp_path / "worker1.log",
                    "--min",
                    "1",
                    "--max",
                    "4",
                    "--metrics-port",
                    str(metrics_port),
                    timeout=60,
                ),
            ]
            with cpu_hogs():
                outcome = asyncio.run(_scenario(server, dsn, workers[0]))
            worker_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            survivor = workers[1]
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0, (tmp_path / "worker1.log").read_text()
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            server.stop()
            drop_postgres_database(database)

    ids, completed, tasks = outcome["ids"], outcome["completed"], outcome["tasks"]
    assert len(set(ids)) == TASKS
    assert outcome["held"] > 0 and outcome["killed_after"] < TASKS  # killed mid-run, holding leases
    assert outcome["failed"] == []
    # Every task completed exactly once: one result, one task_completed event each.
    assert len(tasks) == TASKS and all(t["status"] == "completed" and t["result"] for t in tasks)
    assert set(completed) == set(ids) and set(completed.values()) == {1}
    # The killed worker's tasks were claimed again after their leases expired.
    assert sum(1 for t in tasks if t["attempts"] > 1) >= 1
    # A separate worker process exports its own agent metrics.
    assert "agent_requests_total{agent_id=" in worker_metrics and "agent_response_time_seconds_count" in worker_metrics
