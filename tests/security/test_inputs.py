"""Bad input is a 422 (or a 413) in the envelope, never a database error: NUL characters, lone
surrogates, integers outside ``INTEGER``, unbounded pages, and oversized or deeply nested JSON."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from agentlightning.api.app import create_app
from agentlightning.settings import Settings
from agentlightning.validation import JsonLimits, configure_limits
from tests.helpers import unique

BIG = [2**31, 2**63, 10**30, -1, 0]


def _field_named(response: httpx.Response, field: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    errors = body["error"]["details"]["errors"]
    assert any(field in e["field"] for e in errors), errors


async def _agent(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/api/v2/agents", json={"name": unique("in"), "type": "chat"}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def test_nul_characters_are_422(client: httpx.AsyncClient, login: Callable[..., Any]) -> None:
    headers = await login("developer")
    agent = await _agent(client, headers)
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/v2/agents", {"json": {"name": unique("n"), "type": "a\x00b"}}, "type"),
        ("POST", "/api/v2/agents", {"json": {"name": unique("n"), "type": "t", "description": "\x00"}}, "description"),
        (
            "POST",
            "/api/v2/agents",
            {"json": {"name": unique("n"), "type": "t", "config": {"system_prompt": "hi\x00"}}},
            "config",
        ),
        ("PUT", f"/api/v2/agents/{agent['id']}", {"json": {"config": {"x": ["ok", "no\x00"]}}}, "config"),
        ("POST", "/api/v2/agents/assign", {"json": {"task": "a\x00", "agent_id": agent["id"]}}, "task"),
        (
            "POST",
            "/api/v2/agents/assign",
            {"json": {"task": "t", "agent_id": agent["id"], "context": {"k": {"deep": "v\x00"}}}},
            "context",
        ),
        (
            "POST",
            "/api/v2/agents/assign",
            {"json": {"task": "t", "agent_id": agent["id"], "context": {"k\x00": 1}}},
            "context",
        ),
        ("POST", "/api/v2/knowledge", {"json": {"title": "t\x00", "content": "c"}}, "title"),
        ("POST", "/api/v2/knowledge", {"json": {"title": "t", "content": "c", "tags": ["\x00"]}}, "tags"),
        ("POST", "/api/v2/knowledge", {"json": {"title": "t", "content": "c", "metadata": {"a": "\x00"}}}, "metadata"),
        ("GET", "/api/v2/knowledge/search", {"params": {"q": "a\x00b"}}, "q"),
        ("GET", "/api/v2/knowledge", {"params": {"category": "\x00"}}, "category"),
        ("GET", "/api/v2/agents", {"params": {"type": "x\x00"}}, "type"),
        ("GET", "/api/v2/tasks", {"params": {"agent": "x\x00"}}, "agent"),
        ("GET", "/api/v2/tasks", {"params": {"session_id": "\x00"}}, "session_id"),
        ("GET", "/api/v2/agents/a%00b", {}, "agent_ref"),
        ("GET", "/api/v2/rl/experiments", {"params": {"algorithm": "\x00"}}, "algorithm"),
        ("POST", "/auth/api-keys", {"json": {"name": "k\x00"}}, "name"),
    ]
    for method, url, kwargs, field in cases:
        _field_named(await client.request(method, url, headers=headers, **kwargs), field)
    login_response = await client.post("/auth/login", json={"username": "ad\x00min", "password": "whatever-pass"})
    _field_named(login_response, "username")


async def test_lone_surrogates_and_nan_are_422(client: httpx.AsyncClient, login: Callable[..., Any]) -> None:
    headers = {**(await login("developer")), "content-type": "application/json"}
    agent = await _agent(client, headers)
    raw = '{"task": "t", "agent_id": AID, "context": {"x": "\\ud800"}}'.replace("AID", str(agent["id"]))
    _field_named(await client.post("/api/v2/agents/assign", content=raw, headers=headers), "context")
    raw = '{"title": "\\udfff", "content": "c"}'
    _field_named(await client.post("/api/v2/knowledge", content=raw, headers=headers), "title")
    raw = '{"task": "t", "agent_id": AID, "context": {"x": NaN}}'.replace("AID", str(agent["id"]))
    _field_named(await client.post("/api/v2/agents/assign", content=raw, headers=headers), "context")
    # Nesting deeper than the JSON parser's recursion: a 400 in the envelope, not a crash.
    raw = (
        '{"task": "t", "agent_id": AID, "context": {"x": '.replace("AID", str(agent["id"]))
        + "[" * 5000
        + "]" * 5000
        + "}}"
    )
    response = await client.post("/api/v2/agents/assign", content=raw, headers=headers)
    assert response.status_code in (400, 422) and response.json()["success"] is False, response.text


async def test_integers_outside_the_database_range_are_422(
    client: httpx.AsyncClient, login: Callable[..., Any]
) -> None:
    headers = await login("admin")
    for number in BIG:
        for url, field in [
            (f"/api/v2/tasks/{number}", "task_id"),
            (f"/api/v2/tasks/{number}/trace", "task_id"),
            (f"/api/v2/rl/experiments/{number}", "experiment_id"),
            (f"/api/v2/knowledge/{number}", "item_id"),
            (f"/api/v2/knowledge/1/versions/{number}", "version"),
        ]:
            _field_named(await client.get(url, headers=headers), field)
        _field_named(await client.delete(f"/auth/api-keys/{number}", headers=headers), "key_id")
        _field_named(await client.post(f"/api/v2/tasks/{number}/cancel", headers=headers), "task_id")
        assign = {"task": "t", "agent_id": number}
        _field_named(await client.post("/api/v2/agents/assign", json=assign, headers=headers), "agent_id")
    # Digits too large for an id, as a name: a 404 (no such agent), and a 422 where a body names it.
    response = await client.get(f"/api/v2/agents/{2**63}", headers=headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "AGENT_NOT_FOUND"
    response = await client.get("/api/v2/tasks", params={"agent": str(2**40)}, headers=headers)
    assert response.status_code == 404
    _field_named(
        await client.post("/api/v2/agents/assign", json={"task": "t", "agent_id": str(2**40)}, headers=headers),
        "body",
    )
    _field_named(
        await client.post("/api/v2/agents/assign", json={"task": "t", "agent_id": "²"}, headers=headers), "agent_id"
    )
    body = {"name": unique("x"), "algorithm": "ppo", "environment": "CartPole-v1", "total_timesteps": 100}
    _field_named(
        await client.post("/api/v2/rl/experiments", json={**body, "agent_id": 2**31}, headers=headers), "agent_id"
    )


async def test_pages_and_offsets_are_bounded(client: httpx.AsyncClient, login: Callable[..., Any]) -> None:
    headers = await login("admin")
    for url, params, field in [
        ("/api/v2/agents", {"page": 10**9}, "page"),
        ("/api/v2/agents", {"page": 2**63}, "page"),
        ("/api/v2/agents", {"page_size": 10**6}, "page_size"),
        ("/api/v2/tasks", {"page": 10**12}, "page"),
        ("/api/v2/knowledge", {"offset": 10**12}, "offset"),
        ("/api/v2/rl/experiments", {"offset": 2**40}, "offset"),
        ("/api/v2/rl/experiments/1/metrics", {"after_id": 2**40}, "after_id"),
        ("/api/v2/knowledge/search", {"q": "x", "offset": 10**9}, "offset"),
    ]:
        _field_named(await client.get(url, params=params, headers=headers), field)
    # The largest allowed page is answered (empty), not an error.
    response = await client.get("/api/v2/agents", params={"page": 100_000, "page_size": 500}, headers=headers)
    assert response.status_code == 200 and response.json()["data"]["items"] == []


@pytest.fixture
def small_json_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(input_json_max_bytes=2048, input_json_max_depth=6)


@pytest.fixture
async def small_json_client(small_json_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(small_json_settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield app, http
    configure_limits(JsonLimits())  # back to the defaults for whatever runs next


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


async def test_free_form_json_has_size_and_depth_limits(small_json_client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    from tests.helpers import login_as

    app, client = small_json_client
    headers = await login_as(client, app, "developer")
    agent = await _agent(client, headers)
    big = {"blob": "x" * 4096}

    def too_large(response: httpx.Response, field: str) -> None:
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "PAYLOAD_TOO_LARGE" and any(field in e["field"] for e in error["details"]["errors"])

    assign = {"task": "t", "agent_id": agent["id"]}
    too_large(await client.post("/api/v2/agents/assign", json={**assign, "context": big}, headers=headers), "context")
    too_large(
        await client.post("/api/v2/knowledge", json={"title": "t", "content": "c", "metadata": big}, headers=headers),
        "metadata",
    )
    too_large(await client.put(f"/api/v2/agents/{agent['id']}", json={"config": big}, headers=headers), "config")
    too_large(
        await client.post(
            "/api/v2/agents", json={"name": unique("b"), "type": "t", "config": {"extra": big}}, headers=headers
        ),
        "body",
    )
    experiment = {"name": unique("e"), "algorithm": "ppo", "environment": "CartPole-v1", "total_timesteps": 100}
    too_large(
        await client.post("/api/v2/rl/experiments", json={**experiment, "env_kwargs": big}, headers=headers),
        "env_kwargs",
    )

    deep = _nested(10)
    _field_named(
        await client.post("/api/v2/agents/assign", json={**assign, "context": deep}, headers=headers), "context"
    )
    _field_named(
        await client.post(
            "/api/v2/knowledge", json={"title": "t", "content": "c", "metadata": _nested(10)}, headers=headers
        ),
        "metadata",
    )
    _field_named(
        await client.post(
            "/api/v2/rl/experiments", json={**experiment, "hyperparameters": _nested(10)}, headers=headers
        ),
        "hyperparameters",
    )
    # Within the limits: accepted.
    ok = await client.post("/api/v2/agents/assign", json={**assign, "context": _nested(4)}, headers=headers)
    assert ok.status_code in (200, 202), ok.text
    assert len(json.dumps(_nested(4))) < 2048
