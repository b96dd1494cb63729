"""Faults under task traffic: a private Redis goes away and comes back, then a private PostgreSQL
restarts, while tasks are assigned over HTTP and a WebSocket client listens (resuming with the
last event id whenever its connection drops).

Every request answers 2xx or 503 (never a 500); every accepted task reaches one terminal state;
the event log holds exactly one terminal event per task, and the WebSocket client receives
exactly that one, Redis outage or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from tests.pg_server import PostgresProcess
from tests.redis_server import RedisProcess

ADMIN_PASSWORD = "fault-admin-password-long"
TASKS = 120
TERMINAL = ("task_completed", "task_failed", "task_cancelled")


class Listener:
    """A WebSocket subscriber that reconnects with ``last_event_id`` and counts terminal events."""

    def __init__(self, url: str, token: str, agent: str) -> None:
        self.url = f"{url.replace('http://', 'ws://')}/ws/agents?token={token}"
        self.agent = agent
        self.terminal: Counter[int] = Counter()
        self.last_id: int | None = None
        self.reconnects = 0

    async def run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url, max_queue=None, open_timeout=10) as ws:
                    json.loads(await ws.recv())
                    await ws.send(
                        json.dumps(
                            {
                                "action": "subscribe",
                                "agent_id": self.agent,
                                "events": list(TERMINAL),
                                "last_event_id": self.last_id,
                            }
                        )
                    )
                    async for raw in ws:
                        message = json.loads(raw)
                        if message.get("type") != "event":
                            continue
                        self.last_id = max(self.last_id or 0, message["id"])
                        self.terminal[message["data"]["task_id"]] += 1
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(0.5)


async def _assign(http: httpx.AsyncClient, headers: dict[str, str], agent: str, i: int, codes: Counter[int]) -> int:
    """Assign task ``i``, retrying (same Idempotency-Key) through 503s and dropped connections."""
    deadline = time.monotonic() + 180
    while True:
        try:
            r = await http.post(
                "/api/v2/agents/assign",
                json={"task": f"fault task {i}", "agent_id": agent},
                headers=headers | {"Idempotency-Key": f"{agent}-{i}"},
            )
            codes[r.status_code] += 1
            if r.status_code in (200, 201, 202):
                return int(r.json()["task_id"])
            assert r.status_code == 503, r.text
        except httpx.TransportError:
            codes[0] += 1
        assert time.monotonic() < deadline, f"task {i} was never accepted"
        await asyncio.sleep(0.3)


async def _scenario(server: ServerProcess, pg: PostgresProcess, redis: RedisProcess, dsn: str) -> dict[str, Any]:
    codes: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        token, headers, name = await admin_with_agent(http, ADMIN_PASSWORD, "fault", max_concurrency=8)
        listener = Listener(server.url, token, name)
        listening = asyncio.create_task(listener.run())
        await asyncio.sleep(1.0)
        gate = asyncio.Semaphore(8)
        progress = asyncio.Event()
        accepted = 0

        async def one(i: int) -> int:
            nonlocal accepted
            async with gate:
                task_id = await _assign(http, headers, name, i, codes)
                accepted += 1
                if accepted >= TASKS // 4:
                    progress.set()
                return task_id

        async def faults() -> None:
            await progress.wait()
            redis.stop()  # Redis outage: events keep being stored, none are published
            await asyncio.sleep(3.0)
            redis.start()
            await asyncio.sleep(2.0)
            await asyncio.to_thread(pg.stop, "fast")  # every connection is dropped
            await asyncio.sleep(2.0)
            await asyncio.to_thread(pg.start)

        ids, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(TASKS))), faults())
        conn = None
        deadline = time.monotonic() + 240
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                conn = conn or await asyncpg.connect(dsn)
                unfinished = await conn.fetchval(
                    "SELECT count(*) FROM tasks WHERE id = ANY($1::int[]) AND status IN ('pending', 'running')", ids
                )
                if unfinished == 0 and all(listener.terminal[t] for t in ids):
                    break
            assert time.monotonic() < deadline, f"unfinished tasks; events for {len(listener.terminal)} of {TASKS}"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # a duplicate would arrive now
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        assert conn is not None
        statuses = dict(await conn.fetch("SELECT id, status FROM tasks WHERE id = ANY($1::int[])", ids))
        stored = Counter(
            r["task_id"]
            for r in await conn.fetch(
                "SELECT task_id FROM task_events WHERE task_id = ANY($1::int[]) AND event = ANY($2::text[])",
                ids,
                list(TERMINAL),
            )
        )
        await conn.close()
    return {"ids": ids, "codes": codes, "statuses": statuses, "stored": stored, "listener": listener}


@pytest.mark.slow
def test_redis_outage_and_postgres_restart_lose_no_terminal_event(tmp_path: Path) -> None:
    with PostgresProcess() as pg, FakeLLMServer(delay_s=0.05) as llm:
        redis = RedisProcess()
        redis.start()
        asyncio.run(_create_database(pg.admin_dsn, "agl_faults"))
        env = {
            "DATABASE_URL": pg.url("agl_faults"),
            "REDIS_URL": redis.url,
            "AGL_EVENTS_PREFIX": f"aglfault{uuid.uuid4().hex[:6]}",
            "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AGENT_WORKERS_IN_API": "false",
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": "fake-model",
            "AGENT_TASK_LEASE_SECONDS": "6",
            "AGENT_POLL_INTERVAL_SECONDS": "0.5",
            "RATE_LIMIT_DEFAULT": "100000/minute",
            "RATE_LIMIT_ANONYMOUS": "100000/minute",
        }
        server = ServerProcess(env, tmp_path / "server.log")
        worker = None
        try:
            server.start()
            worker = start_worker(server.env, tmp_path / "worker.log", "--min", "2", "--max", "8")
            outcome = asyncio.run(_scenario(server, pg, redis, pg.url("agl_faults").replace("+asyncpg", "")))
        finally:
            if worker is not None:
                worker.kill()
                worker.wait()
            server.stop()
            redis.stop()
    ids, codes, statuses, stored = outcome["ids"], outcome["codes"], outcome["statuses"], outcome["stored"]
    listener: Listener = outcome["listener"]
    assert 500 not in codes and all(code in (0, 202, 503) for code in codes), codes
    assert len(set(ids)) == TASKS
    assert all(statuses[t] in ("completed", "failed", "cancelled") for t in ids)
    assert all(stored[t] == 1 for t in ids), {t: stored[t] for t in ids if stored[t] != 1}
    assert all(listener.terminal[t] == 1 for t in ids), {
        t: listener.terminal[t] for t in ids if listener.terminal[t] != 1
    }


async def _create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
