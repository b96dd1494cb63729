"""Per-user visibility on ``/ws/agents``: a plain ``user`` receives only events of its own tasks,
live or replayed with ``last_event_id``, and no training events; an admin receives everyone's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from fastapi import FastAPI

from agentlightning.core.context import AppContext
from tests.helpers import login_as, unique


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


async def _drain(ws: Any, quiet: float = 1.5) -> list[dict[str, Any]]:
    """Every event received until the socket has been quiet for ``quiet`` seconds."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), quiet))
        except asyncio.TimeoutError:
            return got
        if message["type"] == "event":
            got.append(message)


async def _connect(live_url: str, headers: dict[str, str], **subscribe: Any) -> Any:
    ws = await websockets.connect(f"ws://{live_url}/ws/agents?token={_token(headers)}")
    assert json.loads(await ws.recv())["type"] == "connected"
    await ws.send(json.dumps({"action": "subscribe", **subscribe}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def test_plain_users_see_only_their_own_task_events(
    app: FastAPI, live_url: str, client: httpx.AsyncClient
) -> None:
    ctx: AppContext = app.state.ctx
    alice = await login_as(client, app, "user")
    bob = await login_as(client, app, "user")
    admin = await login_as(client, app, "admin")
    agent = (
        await client.post("/api/v2/agents", json={"name": unique("iso"), "type": "iso_agent"}, headers=admin)
    ).json()["data"]
    start = await ctx.events.last_id()
    # Everyone subscribes to everything, by agent name and with no selector at all.
    alice_ws = await _connect(live_url, alice)
    bob_ws = await _connect(live_url, bob, agent_id=agent["name"])
    admin_ws = await _connect(live_url, admin)
    try:
        mine = (
            await client.post("/api/v2/agents/assign", json={"task": "alice's", "agent_id": agent["id"]}, headers=alice)
        ).json()
        theirs = (
            await client.post("/api/v2/agents/assign", json={"task": "bob's", "agent_id": agent["id"]}, headers=bob)
        ).json()
        await ctx.events.publish("training", "training_update", {"experiment_id": 1, "agent_id": agent["id"]})
        alice_got, bob_got, admin_got = await asyncio.gather(_drain(alice_ws), _drain(bob_ws), _drain(admin_ws))
    finally:
        for ws in (alice_ws, bob_ws, admin_ws):
            await ws.close()
    assert {e["data"]["task_id"] for e in alice_got} == {mine["task_id"]}
    assert {e["data"]["task_id"] for e in bob_got} == {theirs["task_id"]}
    assert all(e["event"] != "training_update" for e in alice_got + bob_got)  # users lack rl:read
    admin_tasks = {e["data"].get("task_id") for e in admin_got if e["event"] == "task_created"}
    assert {mine["task_id"], theirs["task_id"]} <= admin_tasks
    assert any(e["event"] == "training_update" for e in admin_got)
    # Fields: what REST shows the owner, nothing about anyone else.
    rest = (await client.get(f"/api/v2/tasks/{mine['task_id']}", headers=alice)).json()["data"]
    for key, value in alice_got[0]["data"].items():
        if key in rest and key not in ("created_at",):
            assert rest[key] == value, key
    assert (await client.get(f"/api/v2/tasks/{theirs['task_id']}", headers=alice)).status_code == 404

    # Replaying from before both tasks applies the same rule.
    replay_ws = await _connect(live_url, alice, last_event_id=start)
    try:
        replayed = await _drain(replay_ws)
    finally:
        await replay_ws.close()
    assert {e["data"]["task_id"] for e in replayed} == {mine["task_id"]}


async def test_resume_cursor_must_be_an_id(app: FastAPI, live_url: str, client: httpx.AsyncClient) -> None:
    user = await login_as(client, app, "user")
    async with websockets.connect(f"ws://{live_url}/ws/agents?token={_token(user)}") as ws:
        await ws.recv()
        for bad in ("1; DROP TABLE task_events", -5, {"$gt": 0}):
            await ws.send(json.dumps({"action": "subscribe", "last_event_id": bad}))
            assert json.loads(await ws.recv())["error"]["code"] == "VALIDATION_ERROR"
