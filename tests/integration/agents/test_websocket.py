"""``/ws/agents`` over a real WebSocket: authentication, subscribe/unsubscribe, live task events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agentlightning.agents.pool import WorkerPool
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


async def _recv(ws: Any, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _recv_until(ws: Any, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await _recv(ws, max(0.1, deadline - asyncio.get_running_loop().time()))
        if predicate(message):
            return message


async def test_refuses_connections_without_a_valid_token(live_url: str) -> None:
    # The docs promise close code 4401 for a bad token, whether it came in the handshake or later.
    async with websockets.connect(f"ws://{live_url}/ws/agents?token=not-a-token") as ws:
        with pytest.raises(ConnectionClosed) as refused:
            await ws.recv()
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401
    async with websockets.connect(f"ws://{live_url}/ws/agents") as ws:
        await ws.send(json.dumps({"action": "subscribe", "agent_id": "data_agent"}))  # not an auth message
        message = await _recv(ws)
        assert message["type"] == "error" and message["error"]["code"] == "UNAUTHORIZED"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_token_in_header_or_first_message(live_url: str, admin: dict[str, str]) -> None:
    async with websockets.connect(f"ws://{live_url}/ws/agents", additional_headers=admin) as ws:
        assert (await _recv(ws))["type"] == "connected"
    async with websockets.connect(f"ws://{live_url}/ws/agents") as ws:
        await ws.send(json.dumps({"action": "auth", "token": _token(admin)}))
        assert (await _recv(ws))["type"] == "connected"
        await ws.send(json.dumps({"action": "ping"}))
        assert (await _recv(ws))["type"] == "pong"


async def test_subscribe_receives_task_events_and_unsubscribe_stops_them(
    live_url: str, client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    agent = await create_agent(client, admin, unique("ws"), config={"cache": False})
    async with websockets.connect(f"ws://{live_url}/ws/agents?token={_token(admin)}") as ws:
        assert (await _recv(ws))["type"] == "connected"
        await ws.send(json.dumps({"action": "subscribe", "agent_id": "nobody_here"}))
        error = await _recv(ws)
        assert (
            error["error"]["code"] == "AGENT_NOT_FOUND"
            and "data_agent" in error["error"]["details"]["available_agents"]
        )
        # The spec's message shape: subscribe by name, with event names.
        await ws.send(
            json.dumps(
                {"action": "subscribe", "agent_id": agent["name"], "events": ["task_completed", "training_update"]}
            )
        )
        subscribed = await _recv(ws)
        assert subscribed["type"] == "subscribed" and subscribed["events"] == ["task_completed", "training_update"]
        await ws.send(
            json.dumps({"action": "subscribe", "agent_id": agent["id"], "events": ["task_created", "task_started"]})
        )
        by_id = await _recv(ws)
        assignment = await client.post(
            "/api/v2/agents/assign", json={"task": "stream me", "agent_id": agent["id"]}, headers=admin
        )
        task_id = assignment.json()["task_id"]
        seen: dict[str, dict[str, Any]] = {}
        while "task_completed" not in seen:
            message = await _recv_until(ws, lambda m: m["type"] == "event" and m["data"]["task_id"] == task_id)
            seen[message["event"]] = message
        assert set(seen) == {"task_created", "task_started", "task_completed"}
        completed = seen["task_completed"]
        assert completed["subscriptions"] == [subscribed["subscription_id"]]
        assert completed["data"]["agent_name"] == agent["name"] and completed["data"]["result"]["answer"]
        await ws.send(json.dumps({"action": "unsubscribe", "subscription_id": subscribed["subscription_id"]}))
        assert (await _recv(ws))["subscription_ids"] == [subscribed["subscription_id"]]
        await ws.send(json.dumps({"action": "unsubscribe", "subscription_id": by_id["subscription_id"]}))
        await _recv(ws)
        await client.post("/api/v2/agents/assign", json={"task": "silent", "agent_id": agent["id"]}, headers=admin)
        await ws.send(json.dumps({"action": "ping"}))
        assert (await _recv(ws))["type"] == "pong"
        with pytest.raises(asyncio.TimeoutError):
            await _recv(ws, timeout=1.0)


async def test_subscribe_by_type_and_bad_messages(
    live_url: str, admin: dict[str, str], client: httpx.AsyncClient
) -> None:
    async with websockets.connect(f"ws://{live_url}/ws/agents?token={_token(admin)}") as ws:
        await _recv(ws)
        await ws.send("not json")
        assert (await _recv(ws))["error"]["code"] == "VALIDATION_ERROR"
        await ws.send(json.dumps({"action": "subscribe", "agent_type": "data_agent", "events": ["nope"]}))
        assert (await _recv(ws))["error"]["details"]["available_events"]
        await ws.send(json.dumps({"action": "subscribe", "agent_id": "data_agent", "events": ["task_created"]}))
        assert (await _recv(ws))["type"] == "subscribed"
        await client.post("/api/v2/agents/assign", json={"task": "typed", "agent_type": "data_agent"}, headers=admin)
        event = await _recv_until(ws, lambda m: m["type"] == "event")
        assert event["event"] == "task_created" and event["data"]["agent_type"] == "data_agent"
