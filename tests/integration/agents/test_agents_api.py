"""The agent registry over HTTP: list/get/create/update/delete/restart/status, on both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from tests.helpers import unique
from tests.integration.agents.helpers import create_agent


async def test_fresh_install_has_the_starter_catalogue(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.get("/api/v2/agents", params={"page_size": 500}, headers=admin)
    assert response.status_code == 200
    names = {a["name"] for a in response.json()["data"]["items"]}
    assert {"general_assistant", "data_agent", "research_agent", "math_agent"} <= names
    templates = (await client.get("/api/v2/agents/templates", headers=admin)).json()["data"]
    assert {"general_assistant", "data_agent", "research_agent", "math_agent"} <= {t["name"] for t in templates}
    tools = (await client.get("/api/v2/agents/tools", headers=admin)).json()["data"]
    assert {t["name"] for t in tools} == {
        "calculator",
        "knowledge_search",
        "python",
        "sql_query",
        "http_request",
        "datetime",
        "memory",
    }
    http_tool = next(t for t in tools if t["name"] == "http_request")
    assert http_tool["enabled"] is False and http_tool["permission"] == "network"


async def test_get_by_id_or_name_and_not_found(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    agent = await create_agent(client, admin, unique("lookup"), description="x")
    by_id = (await client.get(f"/api/v2/agents/{agent['id']}", headers=admin)).json()["data"]
    by_name = (await client.get(f"/api/v2/agents/{agent['name']}", headers=admin)).json()["data"]
    assert by_id["id"] == by_name["id"] == agent["id"]
    assert by_id["runtime"]["status"] == "active"
    missing = await client.get("/api/v2/agents/agent_123", headers=admin)
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "AGENT_NOT_FOUND"
    assert error["details"]["agent_id"] == "agent_123"
    assert "data_agent" in error["details"]["available_agents"]


async def test_list_filters_and_pagination(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    kind = unique("kind")
    for i in range(3):
        await create_agent(client, admin, unique("paged"), type=kind, status="paused" if i == 2 else "active")
    page1 = (await client.get("/api/v2/agents", params={"type": kind, "page_size": 2}, headers=admin)).json()["data"]
    page2 = (
        await client.get("/api/v2/agents", params={"type": kind, "page_size": 2, "page": 2}, headers=admin)
    ).json()["data"]
    assert page1["total"] == 3 and len(page1["items"]) == 2 and len(page2["items"]) == 1
    paused = (await client.get("/api/v2/agents", params={"type": kind, "status": "paused"}, headers=admin)).json()
    assert paused["data"]["total"] == 1


async def test_create_from_template_validation_and_conflicts(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    name = unique("analyst")
    created = await create_agent(client, admin, name, template="data_agent", config={"temperature": 0.5})
    assert created["type"] == "data_agent"
    assert created["config"]["tools"] == ["sql_query", "python", "calculator"]
    assert created["config"]["temperature"] == 0.5 and created["config_version"] == 1
    duplicate = await client.post("/api/v2/agents", json={"name": name, "type": "x"}, headers=admin)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "AGENT_NAME_TAKEN"
    bad_tool = await client.post(
        "/api/v2/agents", json={"name": unique("bad"), "type": "x", "config": {"tools": ["rm_rf"]}}, headers=admin
    )
    assert bad_tool.status_code == 422 and bad_tool.json()["error"]["details"]["unknown_tools"] == ["rm_rf"]
    bad_template = await client.post("/api/v2/agents", json={"name": unique("t"), "template": "nope"}, headers=admin)
    assert bad_template.status_code == 404 and bad_template.json()["error"]["code"] == "TEMPLATE_NOT_FOUND"


async def test_update_increments_config_version_only_on_change(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    agent = await create_agent(client, admin, unique("upd"), config={"system_prompt": "one", "tools": ["calculator"]})
    first = (
        await client.put(f"/api/v2/agents/{agent['name']}", json={"config": {"system_prompt": "two"}}, headers=admin)
    ).json()["data"]
    assert first["config_version"] == 2 and first["config"]["system_prompt"] == "two"
    assert first["config"]["tools"] == ["calculator"]  # merged, not replaced
    same = (
        await client.put(f"/api/v2/agents/{agent['id']}", json={"config": {"system_prompt": "two"}}, headers=admin)
    ).json()["data"]
    assert same["config_version"] == 2
    paused = (await client.put(f"/api/v2/agents/{agent['id']}", json={"status": "paused"}, headers=admin)).json()
    assert paused["data"]["status"] == "paused" and paused["data"]["config_version"] == 2
    invalid = await client.put(f"/api/v2/agents/{agent['id']}", json={"config": {"temperature": 9}}, headers=admin)
    assert invalid.status_code == 422


async def test_delete_cancels_unfinished_tasks(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    agent = await create_agent(client, admin, unique("del"))
    assign = await client.post(
        "/api/v2/agents/assign", json={"task": "never runs", "agent_id": agent["id"]}, headers=admin
    )
    task_id = assign.json()["task_id"]
    deleted = await client.delete(f"/api/v2/agents/{agent['id']}", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["data"]["cancelled_tasks"] == [task_id]
    assert (await client.get(f"/api/v2/agents/{agent['id']}", headers=admin)).status_code == 404
    task = (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]
    assert task["status"] == "cancelled" and task["agent_id"] is None


async def test_restart_and_status_overview(client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI) -> None:
    agent = await create_agent(client, admin, unique("rst"), status="paused")
    restarted = await client.post(f"/api/v2/agents/{agent['name']}/restart", headers=admin)
    assert restarted.status_code == 200 and restarted.json()["data"]["status"] == "active"
    overview = (await client.get("/api/v2/agents/status", headers=admin)).json()["data"]
    assert overview["total_agents"] >= 5
    assert set(overview["queue"]) == {"pending", "running", "completed", "failed", "cancelled"}
    assert any(a["name"] == agent["name"] and a["status"] == "active" for a in overview["agents"])
    one = (await client.get(f"/api/v2/agents/{agent['id']}/status", headers=admin)).json()["data"]
    assert one["agent_id"] == agent["id"] and one["running"] == 0
    assert await app.state.ctx.cache.exists(f"agent:status:{agent['id']}")  # the spec's 5-minute status key


async def test_users_read_and_assign_but_cannot_manage(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    user = await login("user")
    assert (await client.get("/api/v2/agents", headers=user)).status_code == 200
    refused = await client.post("/api/v2/agents", json={"name": unique("u"), "type": "x"}, headers=user)
    assert refused.status_code == 403
    assert (await client.delete("/api/v2/agents/data_agent", headers=user)).status_code == 403
    assert (await client.get("/api/v2/agents")).status_code == 401
