"""Task assignment, reading, listing, cancelling and idempotency over HTTP; queue order and
agent selection in the scheduler.  No workers run here, so tasks stay queued."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.storage.models import Task
from agentlightning.storage.types import utcnow
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent


async def test_spec_client_example_runs_with_a_token(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post(
        "/api/v2/agents/assign",
        json={
            "task": "Analyze quarterly sales data",
            "agent_type": "data_agent",
            "priority": "high",
            "context": {"data_source": "sales_db", "quarter": "Q4_2024"},
        },
        headers=admin,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    task_id = body["task_id"]
    assert body["data"]["task_id"] == task_id and body["success"] is True
    status_response = await client.get(f"/api/v2/tasks/{task_id}", headers=admin)
    data = status_response.json()["data"]
    assert data["status"] == "pending" and data["priority"] == "high"
    assert data["agent_type"] == "data_agent" and data["context"]["quarter"] == "Q4_2024"


async def test_assign_errors(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    no_type = await client.post("/api/v2/agents/assign", json={"task": "x", "agent_type": "nope_agent"}, headers=admin)
    assert no_type.status_code == 404 and no_type.json()["error"]["code"] == "AGENT_NOT_FOUND"
    assert "data_agent" in no_type.json()["error"]["details"]["available_types"]
    no_agent = await client.post("/api/v2/agents/assign", json={"task": "x", "agent_id": "agent_123"}, headers=admin)
    assert no_agent.status_code == 404 and no_agent.json()["error"]["details"]["agent_id"] == "agent_123"
    neither = await client.post("/api/v2/agents/assign", json={"task": "x"}, headers=admin)
    assert neither.status_code == 422
    bad_priority = await client.post(
        "/api/v2/agents/assign", json={"task": "x", "agent_type": "data_agent", "priority": "asap"}, headers=admin
    )
    assert bad_priority.status_code == 422
    missing = await client.get("/api/v2/tasks/987654321", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "TASK_NOT_FOUND"


async def test_idempotency_key_returns_the_first_task(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    key = unique("idem")
    body = {"task": "only once", "agent_type": "assistant"}
    first = await client.post("/api/v2/agents/assign", json=body, headers=admin | {"Idempotency-Key": key})
    again = await client.post("/api/v2/agents/assign", json=body, headers=admin | {"Idempotency-Key": key})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["task_id"] == again.json()["task_id"]
    other = await client.post(
        "/api/v2/agents/assign", json=body | {"task": "different"}, headers=admin | {"Idempotency-Key": key}
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_list_filters_cancel_and_ownership(
    client: httpx.AsyncClient, admin: dict[str, str], login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    agent = await create_agent(client, admin, unique("lister"))
    user = await login("user")
    mine = await client.post(
        "/api/v2/agents/assign", json={"task": "user task", "agent_id": agent["name"], "priority": "low"}, headers=user
    )
    theirs = await client.post(
        "/api/v2/agents/assign", json={"task": "admin task", "agent_id": agent["id"]}, headers=admin
    )
    listed = (await client.get("/api/v2/tasks", params={"agent": agent["name"]}, headers=admin)).json()["data"]
    assert listed["total"] == 2
    low = (await client.get("/api/v2/tasks", params={"agent": agent["id"], "priority": "low"}, headers=admin)).json()
    assert [t["task_id"] for t in low["data"]["items"]] == [mine.json()["task_id"]]
    as_user = (await client.get("/api/v2/tasks", params={"agent": agent["id"]}, headers=user)).json()["data"]
    assert [t["task_id"] for t in as_user["items"]] == [mine.json()["task_id"]]
    hidden = await client.get(f"/api/v2/tasks/{theirs.json()['task_id']}", headers=user)
    assert hidden.status_code == 404
    cancelled = await client.post(f"/api/v2/tasks/{mine.json()['task_id']}/cancel", headers=user)
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "cancelled"
    twice = await client.post(f"/api/v2/tasks/{mine.json()['task_id']}/cancel", headers=user)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "TASK_ALREADY_FINISHED"
    pending = await client.get("/api/v2/tasks", params={"agent": agent["id"], "status": "pending"}, headers=admin)
    assert pending.json()["data"]["total"] == 1


async def test_claims_follow_priority_then_fifo(client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI) -> None:
    agent = await create_agent(client, admin, unique("order"), config={"max_concurrency": 50})
    scheduler = TaskScheduler(app.state.ctx)
    # Drain anything other tests left queued, so only this test's tasks are claimed below.
    while await scheduler.claim("drain", 50):
        pass
    ids = {}
    for label, priority in [
        ("m1", "medium"),
        ("l1", "low"),
        ("h1", "high"),
        ("m2", "medium"),
        ("c1", "critical"),
        ("h2", "high"),
    ]:
        task, _ = await scheduler.assign(task=label, agent_id=agent["id"], priority=priority)
        ids[task["id"]] = label
    claimed = await scheduler.claim("w1", 3) + await scheduler.claim("w1", 10)
    assert [ids[c.id] for c in claimed] == ["c1", "h1", "h2", "m1", "m2", "l1"]
    assert all(c.attempts == 1 and c.lease_token for c in claimed)


async def test_per_agent_concurrency_limit_holds_across_workers(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    agent = await create_agent(client, admin, unique("limited"), config={"max_concurrency": 2})
    other = await create_agent(client, admin, unique("free"), config={"max_concurrency": 10})
    scheduler = TaskScheduler(app.state.ctx)
    while await scheduler.claim("drain", 50):
        pass
    for i in range(4):
        await scheduler.assign(task=f"limited {i}", agent_id=agent["id"], priority="high")
    await scheduler.assign(task="other", agent_id=other["id"], priority="low")
    first = await scheduler.claim("worker-a", 1)
    second = await scheduler.claim("worker-b", 10)
    by_agent = [c.agent.id for c in first + second]
    assert by_agent.count(agent["id"]) == 2 and by_agent.count(other["id"]) == 1
    assert await scheduler.claim("worker-c", 10) == []
    # Finishing one frees a slot for the next task of that agent.
    assert await scheduler.complete(first[0], {"answer": "done"}, 5)
    third = await scheduler.claim("worker-c", 10)
    assert [c.agent.id for c in third] == [agent["id"]]


async def test_assign_by_type_prefers_the_less_loaded_agent(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    kind = unique("balanced")
    busy = await create_agent(client, admin, unique("busy"), type=kind, config={"max_concurrency": 2})
    idle = await create_agent(client, admin, unique("idle"), type=kind, config={"max_concurrency": 2})
    scheduler = TaskScheduler(app.state.ctx)
    for i in range(3):
        await scheduler.assign(task=f"preload {i}", agent_id=busy["id"])
    picks = []
    for i in range(2):
        task, _ = await scheduler.assign(task=f"by type {i}", agent_type=kind)
        picks.append(task["agent_id"])
    assert picks[0] == idle["id"]
    paused = await client.put(f"/api/v2/agents/{idle['id']}", json={"status": "paused"}, headers=admin)
    assert paused.status_code == 200
    task, _ = await scheduler.assign(task="only busy left", agent_type=kind)
    assert task["agent_id"] == busy["id"]


async def test_lease_expiry_requeues_then_fails_on_the_last_attempt(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    ctx = app.state.ctx
    agent = await create_agent(client, admin, unique("reaped"), config={"max_concurrency": 50})
    scheduler = TaskScheduler(ctx)
    task, _ = await scheduler.assign(task="my workers keep dying", agent_id=agent["id"])
    async with ctx.db.session() as s:
        await s.execute(update(Task).where(Task.id == task["id"]).values(max_attempts=2))
        await s.commit()
    for attempt in (1, 2):
        claimed: list = []
        while not any(c.id == task["id"] for c in claimed):
            claimed = await scheduler.claim(f"dying-{attempt}", 50)
            assert claimed
        async with ctx.db.session() as s:  # the lease runs out (as if no heartbeat came for its whole term)
            await s.execute(
                update(Task).where(Task.id == task["id"]).values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
            await s.commit()
        requeued, failed = await scheduler.reap_expired()
        if attempt == 1:
            assert task["id"] in requeued
            assert (await scheduler.get(task["id"]))["status"] == "pending"
        else:
            mine = [f for f in failed if f["task_id"] == task["id"]]
            assert mine and mine[0]["agent_name"] == agent["name"] and mine[0]["status"] == "failed"
    final = await scheduler.get(task["id"])
    assert final["status"] == "failed" and "lease expired on the last attempt (2 attempts)" in final["error_message"]


async def test_numeric_names_are_refused(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post("/api/v2/agents", json={"name": "12345", "type": "x"}, headers=admin)
    assert response.status_code == 422
