"""Workflow events on ``/ws/agents``: the run's owner (and ``workflow:write``) receives
``workflow_started``, ``step_completed`` and ``workflow_completed``; another plain user receives
none of them, subscribed or not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets

from agentlightning.workflows.engine import WorkflowEngine
from tests.helpers import unique

EVENTS = ["workflow_started", "step_completed", "step_failed", "workflow_completed", "workflow_failed"]


async def _recv(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _connect(live_url: str, headers: dict[str, str], selector: str | None) -> Any:
    token = headers["Authorization"].split(" ", 1)[1]
    ws = await websockets.connect(f"ws://{live_url}/ws/agents?token={token}")
    assert (await _recv(ws))["type"] == "connected"
    message: dict[str, Any] = {"action": "subscribe", "events": EVENTS}
    if selector is not None:
        message["agent_id"] = selector
    await ws.send(json.dumps(message))
    subscribed = await _recv(ws)
    assert subscribed["type"] == "subscribed", subscribed
    return ws


async def test_workflow_events_reach_the_owner_only(
    client: httpx.AsyncClient,
    login: Callable[[str], Awaitable[dict[str, str]]],
    engine: WorkflowEngine,
    live_url: str,
) -> None:
    developer = await login("developer")
    owner = await login("user")
    stranger = await login("user")
    name = unique("evwf")
    created = await client.post(
        "/api/v2/workflows",
        json={
            "name": name,
            "visibility": "shared",
            "steps": [{"id": "add", "kind": "tool", "tool": "calculator", "args": {"expression": "1+2"}}],
        },
        headers=developer,
    )
    assert created.status_code == 201, created.text
    mine = await _connect(live_url, owner, name)  # by workflow name
    theirs = await _connect(live_url, stranger, None)
    watcher = await _connect(live_url, developer, None)
    try:
        started = await client.post(f"/api/v2/workflows/{name}/execute", json={"input": {}}, headers=owner)
        run_id = started.json()["data"]["run_id"]
        seen: list[str] = []
        while "workflow_completed" not in seen:
            message = await _recv(mine)
            if message["type"] == "event":
                assert message["data"]["run_id"] == run_id and message["topic"] == "workflows"
                seen.append(message["event"])
        assert seen[0] == "workflow_started" and "step_completed" in seen
        dev_seen: list[str] = []
        while "workflow_completed" not in dev_seen:
            message = await _recv(watcher)
            if message["type"] == "event" and message["data"]["run_id"] == run_id:
                dev_seen.append(message["event"])
        # The stranger's socket got nothing of it: a ping is answered before any event.
        await theirs.send(json.dumps({"action": "ping"}))
        while True:
            message = await _recv(theirs)
            assert message["type"] != "event", message
            if message["type"] == "pong":
                break
    finally:
        for ws in (mine, theirs, watcher):
            await ws.close()
