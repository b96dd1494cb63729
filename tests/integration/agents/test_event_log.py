"""Stored events: ids, resuming after a disconnect, exactly one terminal event, agent names for
training events, and the outbox writing events with the state change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.core.context import AppContext
from agentlightning.storage.types import utcnow
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


async def _recv(ws: Any, timeout: float = 15.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _events(ws: Any, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = await _recv(ws, timeout)
        if message["type"] == "event":
            got.append(message)
    return got


async def test_a_reconnecting_client_gets_what_it_missed_once(
    live_url: str, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    agent = await create_agent(client, admin, name=unique("resume"))
    url = f"ws://{live_url}/ws/agents?token={_token(admin)}"
    subscribe = {"action": "subscribe", "agent_id": agent["name"], "events": ["task_created"]}
    async with websockets.connect(url) as ws:
        await _recv(ws)
        await ws.send(json.dumps(subscribe))
        assert (await _recv(ws))["type"] == "subscribed"
        await client.post("/api/v2/agents/assign", json={"task": "seen", "agent_id": agent["id"]}, headers=admin)
        (first,) = await _events(ws, 1)
        assert isinstance(first["id"], int) and first["data"]["agent_name"] == agent["name"]
    # Offline: three tasks are queued.
    missed = []
    for i in range(3):
        r = await client.post(
            "/api/v2/agents/assign", json={"task": f"missed {i}", "agent_id": agent["id"]}, headers=admin
        )
        missed.append(r.json()["task_id"])
    async with websockets.connect(url) as ws:
        await _recv(ws)
        await ws.send(json.dumps(subscribe | {"last_event_id": first["id"]}))
        assert (await _recv(ws))["type"] == "subscribed"
        replayed = await _events(ws, 3)
        assert [e["data"]["task_id"] for e in replayed] == missed
        assert [e["id"] for e in replayed] == sorted(e["id"] for e in replayed)
        # Live again afterwards, and nothing is sent twice.
        await client.post("/api/v2/agents/assign", json={"task": "live", "agent_id": agent["id"]}, headers=admin)
        (live,) = await _events(ws, 1)
        assert live["data"]["task_id"] not in missed and live["id"] > replayed[-1]["id"]
    # The query-string form resumes the first subscription.
    async with websockets.connect(url + f"&last_event_id={first['id']}") as ws:
        await _recv(ws)
        await ws.send(json.dumps(subscribe))
        assert (await _recv(ws))["last_event_id"] == first["id"]
        again = await _events(ws, 4)
        assert [e["data"]["task_id"] for e in again][:3] == missed


async def test_each_terminal_state_has_exactly_one_stored_event(
    app: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ctx: AppContext = app.state.ctx
    agent = await create_agent(client, admin, name=unique("outbox"))
    ids = []
    for i in range(3):
        r = await client.post("/api/v2/agents/assign", json={"task": f"t{i}", "agent_id": agent["id"]}, headers=admin)
        ids.append(r.json()["task_id"])
    scheduler = TaskScheduler(ctx)
    claimed = []
    while len(claimed) < 2:
        claimed += [c for c in await scheduler.claim("w", 1) if c.id in ids]
    assert await scheduler.complete(claimed[0], {"answer": "ok"}, 3)
    assert not await scheduler.complete(claimed[0], {"answer": "twice"}, 3)  # the second write is refused
    assert await scheduler.fail(claimed[1], "boom", retryable=False) == "failed"
    cancelled = (set(ids) - {c.id for c in claimed}).pop()
    assert (await client.post(f"/api/v2/tasks/{cancelled}/cancel", headers=admin)).status_code == 200
    events = await ctx.events.read_since(0, limit=100_000)
    terminal = [
        (e["data"]["task_id"], e["event"])
        for e in events
        if e["event"] in ("task_completed", "task_failed", "task_cancelled") and e["data"].get("task_id") in ids
    ]
    assert sorted(terminal) == sorted(
        [(claimed[0].id, "task_completed"), (claimed[1].id, "task_failed"), (cancelled, "task_cancelled")]
    )
    started = [e for e in events if e["event"] == "task_started" and e["data"].get("task_id") in ids]
    assert {e["data"]["task_id"] for e in started} == {c.id for c in claimed}


async def test_deleting_an_agent_stores_a_cancel_event_for_each_unfinished_task(
    app: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ctx: AppContext = app.state.ctx
    agent = await create_agent(client, admin, name=unique("doomed"))
    ids = []
    for i in range(2):
        r = await client.post("/api/v2/agents/assign", json={"task": f"t{i}", "agent_id": agent["id"]}, headers=admin)
        ids.append(r.json()["task_id"])
    deleted = await client.delete(f"/api/v2/agents/{agent['id']}", headers=admin)
    assert sorted(deleted.json()["data"]["cancelled_tasks"]) == sorted(ids)
    events = await ctx.events.read_since(0, limit=100_000)
    cancelled = [e["data"]["task_id"] for e in events if e["event"] == "task_cancelled" and e["data"]["task_id"] in ids]
    assert sorted(cancelled) == sorted(ids)
    for task_id in ids:
        assert (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]["status"] == "cancelled"


async def test_training_updates_reach_subscribers_by_agent_name_or_type(
    app: Any, live_url: str, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ctx: AppContext = app.state.ctx
    agent = await create_agent(client, admin, name=unique("trained"), type="data_agent")
    async with websockets.connect(f"ws://{live_url}/ws/agents?token={_token(admin)}") as ws:
        await _recv(ws)
        for selector in (agent["name"], "data_agent"):
            await ws.send(
                json.dumps(
                    {"action": "subscribe", "agent_id": selector, "events": ["task_completed", "training_update"]}
                )
            )
            assert (await _recv(ws))["type"] == "subscribed"
        # As the RL package publishes it: the agent by id only.
        await ctx.events.publish("training", "training_update", {"experiment_id": 7, "agent_id": agent["id"]})
        (event,) = await _events(ws, 1)
        assert event["event"] == "training_update" and len(event["subscriptions"]) == 2
        assert event["data"]["experiment_id"] == 7 and isinstance(event["id"], int)


async def test_an_event_committed_but_never_published_still_arrives(
    app: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """A worker killed between its commit and its publish (or a Redis outage): subscribers in other
    processes still get the event, from the event log."""
    ctx: AppContext = app.state.ctx
    agent = await create_agent(client, admin, name=unique("unpublished"))
    r = await client.post("/api/v2/agents/assign", json={"task": "t", "agent_id": agent["id"]}, headers=admin)
    task_id = r.json()["task_id"]
    scheduler = TaskScheduler(ctx)
    claimed = []
    while not claimed:
        claimed = [c for c in await scheduler.claim("doomed", 1) if c.id == task_id]
    async with ctx.events.subscribe(durable=True) as sub:
        # The outcome and its event commit; the process "dies" before announcing it.
        stored = await scheduler.queue.finish(
            claimed[0],
            [],
            {"status": "completed", "result": {"answer": "ok"}},
            "task_completed",
            {"task_id": task_id},
            utcnow(),
        )
        assert stored is not None
        if ctx.events.backend == "memory":  # one process: nothing else could have missed it
            assert stored["id"] in [e["id"] for e in await ctx.events.read_since(stored["id"] - 1)]
            return
        while True:
            event = await sub.get(timeout=30)
            if event.get("id") == stored["id"]:
                assert event["event"] == "task_completed" and event["data"]["task_id"] == task_id
                break
