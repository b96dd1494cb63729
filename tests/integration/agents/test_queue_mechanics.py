"""The queue's hot path: batch claims (priority, per-agent limits, concurrent workers), the agent
profile cache, the one-statement assign, and event wake-ups of idle workers; on both backends."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from agentlightning.agents.pool import WorkerPool
from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.storage.models import Agent, Task
from agentlightning.storage.types import as_utc
from tests.helpers import cancel_unfinished_tasks, unique
from tests.integration.agents.helpers import create_agent, wait_for_task


async def test_batch_claim_takes_priority_order_within_each_agents_limit(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    narrow = await create_agent(client, admin, unique("narrow"), config={"max_concurrency": 1})
    wide = await create_agent(client, admin, unique("wide"), config={"max_concurrency": 3})
    scheduler = TaskScheduler(app.state.ctx)
    await cancel_unfinished_tasks(app.state.ctx)
    labels: dict[int, str] = {}
    # The narrow agent's critical tasks come first in the queue; they must not hide the others.
    plan = [
        (narrow, "n-crit-1", "critical"),
        (narrow, "n-crit-2", "critical"),
        (narrow, "n-crit-3", "critical"),
        (wide, "w-low-1", "low"),
        (wide, "w-high-1", "high"),
        (wide, "w-med-1", "medium"),
        (wide, "w-high-2", "high"),
        (wide, "w-low-2", "low"),
    ]
    for agent, label, priority in plan:
        task, _ = await scheduler.assign(task=label, agent_id=agent["id"], priority=priority)
        labels[task["id"]] = label
    claimed = await scheduler.claim("batch", 10)
    assert [labels[c.id] for c in claimed] == ["n-crit-1", "w-high-1", "w-high-2", "w-med-1"]
    assert len({c.lease_token for c in claimed}) == 4
    # Both agents are full now: nothing more until a slot frees.
    assert await scheduler.claim("batch", 10) == []
    assert await scheduler.complete(claimed[1], {"answer": "ok"}, 1)
    assert [labels[c.id] for c in await scheduler.claim("batch", 10)] == ["w-low-1"]


async def test_concurrent_batch_claims_never_exceed_an_agents_limit(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    agent = await create_agent(client, admin, unique("contended"), config={"max_concurrency": 3})
    first = TaskScheduler(app.state.ctx)
    await cancel_unfinished_tasks(app.state.ctx)
    for i in range(12):
        await first.assign(task=f"contended {i}", agent_id=agent["id"])
    workers = [first, *(TaskScheduler(app.state.ctx) for _ in range(5))]
    results = await asyncio.gather(*(s.claim(f"w{i}", 4) for i, s in enumerate(workers)))
    claimed = [c for batch in results for c in batch]
    assert len(claimed) == 3
    assert len({c.id for c in claimed}) == 3


async def test_claims_pick_up_a_changed_concurrency_limit(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    agent = await create_agent(client, admin, unique("grows"), config={"max_concurrency": 1})
    scheduler = TaskScheduler(app.state.ctx)
    await cancel_unfinished_tasks(app.state.ctx)
    for i in range(4):
        await scheduler.assign(task=f"grows {i}", agent_id=agent["id"])
    assert len(await scheduler.claim("w", 10)) == 1  # profile cached at config_version 1
    updated = await client.put(f"/api/v2/agents/{agent['id']}", json={"config": {"max_concurrency": 3}}, headers=admin)
    assert updated.status_code == 200 and updated.json()["data"]["config_version"] == 2
    more = await scheduler.claim("w", 10)
    assert len(more) == 2 and all(c.agent.config_version == 2 and c.agent.max_concurrency == 3 for c in more)


async def test_assign_refuses_disabled_and_mistyped_agents_but_replays_its_key(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    agent = await create_agent(client, admin, unique("gatekeeper"), type="gate_type")
    key = unique("key")
    body = {"task": "before disabling", "agent_id": agent["name"]}
    first = await client.post("/api/v2/agents/assign", json=body, headers=admin | {"Idempotency-Key": key})
    assert first.status_code == 202 and first.json()["data"]["agent_name"] == agent["name"]
    wrong_type = await client.post(
        "/api/v2/agents/assign", json={"task": "x", "agent_id": agent["id"], "agent_type": "other_type"}, headers=admin
    )
    assert wrong_type.status_code == 422 and "is of type 'gate_type'" in wrong_type.json()["error"]["message"]
    disabled = await client.put(f"/api/v2/agents/{agent['id']}", json={"status": "disabled"}, headers=admin)
    assert disabled.status_code == 200
    refused = await client.post("/api/v2/agents/assign", json={"task": "x", "agent_id": agent["id"]}, headers=admin)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "AGENT_DISABLED"
    replay = await client.post("/api/v2/agents/assign", json=body, headers=admin | {"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.json()["task_id"] == first.json()["task_id"]


async def test_idle_worker_is_woken_by_task_created_not_the_poll(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    ctx = app.state.ctx
    agent = await create_agent(client, admin, unique("woken"), config={"cache": False})
    await cancel_unfinished_tasks(ctx)
    # A poll this long would fail the test: only the task_created event can start the task in time.
    workers = WorkerPool(ctx.settings.model_copy(update={"agent_poll_interval_seconds": 60.0}), worker_id="sleeper")
    await workers.start(ctx)
    try:
        await asyncio.sleep(0.5)  # the first claim found nothing; the worker is now waiting
        started = time.monotonic()
        r = await client.post("/api/v2/agents/assign", json={"task": "wake up", "agent_id": agent["id"]}, headers=admin)
        assert r.status_code == 202
        done = await wait_for_task(client, admin, r.json()["task_id"], timeout=10.0)
        assert done["status"] == "completed"
        assert time.monotonic() - started < 10.0
        assert workers.completed >= 1
    finally:
        await workers.stop()


async def test_a_claim_marks_the_agents_last_activity(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    agent = await create_agent(client, admin, unique("touched"))
    scheduler = TaskScheduler(app.state.ctx)
    await cancel_unfinished_tasks(app.state.ctx)
    task, _ = await scheduler.assign(task="wake up", agent_id=agent["id"])
    claimed = await scheduler.claim("toucher", 5)
    assert [c.id for c in claimed] == [task["id"]]
    async with app.state.ctx.db.session() as s:
        touched = await s.scalar(select(Agent.last_activity).where(Agent.id == agent["id"]))
        started = await s.scalar(select(Task.started_at).where(Task.id == task["id"]))
    assert touched is not None and as_utc(touched) == as_utc(started)  # the claim's own time
