"""Assigning by ``agent_type`` reaches an agent named like the type when no agent has that type:
the starter ``general_assistant`` (type ``assistant``) answers to ``"agent_type":
"general_assistant"``, as ``data_agent`` does to its own name. A real type wins over a name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.helpers import unique
from tests.integration.agents.helpers import create_agent

ASSIGN = "/api/v2/agents/assign"


async def _assign(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> httpx.Response:
    return await client.post(ASSIGN, json={"task": "hello", "priority": "low", **body}, headers=headers)


async def _cancel(client: httpx.AsyncClient, headers: dict[str, str], response: httpx.Response) -> None:
    await client.post(f"/api/v2/tasks/{response.json()['task_id']}/cancel", headers=headers)


async def test_the_starter_general_assistant_is_reached_by_its_name_as_type(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    admin = await login("admin")
    starter = await client.get("/api/v2/agents/general_assistant", headers=admin)
    assert starter.status_code == 200, starter.text
    assert starter.json()["data"]["type"] == "assistant"
    if starter.json()["data"]["status"] != "active":  # another test may have paused it
        await client.put("/api/v2/agents/general_assistant", json={"status": "active"}, headers=admin)
    user = await login("user")
    for body in (
        {"agent_type": "general_assistant"},
        {"agent_id": "general_assistant", "agent_type": "general_assistant"},
    ):
        response = await _assign(client, user, **body)
        assert response.status_code == 202, response.text
        assert response.json()["data"]["agent_name"] == "general_assistant"
        await _cancel(client, user, response)


async def test_a_real_type_wins_over_a_name_and_unknown_types_are_404(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    admin = await login("admin")
    word = unique("helper")
    named = await create_agent(client, admin, word, type=unique("kind"))
    by_name = await _assign(client, admin, agent_type=word)
    assert by_name.status_code == 202 and by_name.json()["data"]["agent_name"] == named["name"]
    await _cancel(client, admin, by_name)

    typed = await create_agent(client, admin, unique("typed"), type=word)
    by_type = await _assign(client, admin, agent_type=word)
    assert by_type.status_code == 202 and by_type.json()["data"]["agent_name"] == typed["name"]
    await _cancel(client, admin, by_type)

    await client.put(f"/api/v2/agents/{typed['id']}", json={"status": "disabled"}, headers=admin)
    await client.put(f"/api/v2/agents/{named['id']}", json={"status": "disabled"}, headers=admin)
    missing = await _assign(client, admin, agent_type=word)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "AGENT_NOT_FOUND"
    assert "available_types" in missing.json()["error"]["details"]
