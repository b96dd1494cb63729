"""Every response is an envelope with a request id and the spec's security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends

from agentlightning.api.app import create_app
from agentlightning.api.deps import public
from agentlightning.api.middleware import SECURITY_HEADERS
from agentlightning.auth.gate import gate_for
from agentlightning.observability.metrics import REGISTRY
from tests.helpers import login_as


def assert_envelope(response: httpx.Response, *, success: bool) -> dict:  # type: ignore[type-arg]
    body = response.json()
    assert body["success"] is success
    assert body["timestamp"].endswith("Z")
    assert body["request_id"] == response.headers["x-request-id"]
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value
    if not success:
        assert set(body["error"]) == {"code", "message", "details"}
    return body


async def test_success_envelope(client: httpx.AsyncClient) -> None:
    body = assert_envelope(await client.get("/api/v2/health"), success=True)
    assert body["data"]["status"] == "healthy"
    assert body["request_id"].startswith("req_")


async def test_client_request_id_is_kept_and_bad_ones_replaced(client: httpx.AsyncClient) -> None:
    kept = await client.get("/api/v2/health", headers={"X-Request-ID": "req_client-123"})
    assert kept.headers["x-request-id"] == "req_client-123" and kept.json()["request_id"] == "req_client-123"
    replaced = await client.get("/api/v2/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"].startswith("req_")


async def test_404_405_422_in_envelope(client: httpx.AsyncClient) -> None:
    not_found = await client.get("/api/v2/no-such-thing")
    assert not_found.status_code == 404
    assert assert_envelope(not_found, success=False)["error"]["code"] == "NOT_FOUND"

    not_allowed = await client.delete("/api/v2/health")
    assert not_allowed.status_code == 405
    assert assert_envelope(not_allowed, success=False)["error"]["code"] == "METHOD_NOT_ALLOWED"

    invalid = await client.post("/auth/login", json={"username": "someone"})
    assert invalid.status_code == 422
    body = assert_envelope(invalid, success=False)
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"]["errors"][0]["field"] == "body.password"

    malformed = await client.post("/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert assert_envelope(malformed, success=False)["error"]["code"] == "INVALID_JSON"


async def test_malformed_json_says_where(client: httpx.AsyncClient) -> None:
    """A broken body is named as such, with the line and column to look at (not as a field)."""
    body = b'{\n  "username": "someone",\n  "password": "x",,\n}'
    response = await client.post("/auth/login", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = assert_envelope(response, success=False)["error"]
    assert error["code"] == "INVALID_JSON"
    assert error["details"]["line"] == 3 and error["details"]["column"] == 19
    assert error["details"]["position"] == body.index(b",,") + 1
    assert error["message"].startswith("Malformed JSON at line 3, column 19: ")
    assert "body." not in error["message"]

    single_line = await client.post(
        "/api/v2/agents/assign", content=b'{"task": "hi", "agent_type": }', headers={"content-type": "application/json"}
    )
    assert single_line.status_code == 400  # before authentication: nothing was parsed into a request
    assert single_line.json()["error"]["details"]["line"] == 1


async def test_rate_limit_gives_429_with_retry_after(settings_factory) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_factory(rate_limit_anonymous="3/minute", agl_events_prefix="rl-" + __name__))
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            # A fresh IP per run keeps the shared Redis window of other tests out of the way.
            statuses = []
            for _ in range(4):
                statuses.append((await client.get("/api/v2/health")).status_code)
            assert statuses[:3] == [200, 200, 200]
            limited = await client.get("/api/v2/health")
            assert limited.status_code == 429
            body = assert_envelope(limited, success=False)
            assert body["error"]["code"] == "RATE_LIMITED"
            assert int(limited.headers["retry-after"]) >= 1


async def test_user_quota_is_counted_with_the_revocation_check(settings_factory) -> None:  # type: ignore[no-untyped-def]
    """The per-user quota (counted in the same round trip as the revocation check and the user's
    record) refuses the request past it, limits' own window stats see the same counter, and a
    script Redis does not know is loaded again."""
    app = create_app(settings_factory(rate_limit_default="3/minute", agl_events_prefix="rlu-" + __name__))
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            headers = await login_as(client, app, "user")
            profile = await client.get("/auth/profile", headers=headers)
            assert profile.status_code == 200
            user_id = str(profile.json()["data"]["user_id"])
            gate = gate_for(app.state.ctx)
            if gate._redis is not None:
                gate._admit_script().sha = "0" * 40  # a script Redis does not know, as after a restart
            statuses = [(await client.get("/auth/profile", headers=headers)).status_code for _ in range(3)]
            assert statuses == [200, 200, 429]
            assert await gate.exhausted("user", user_id)
            await gate.clear("user", user_id)
            assert (await client.get("/auth/profile", headers=headers)).status_code == 200
            await client.post("/auth/logout", headers=headers)
            revoked = await client.get("/auth/profile", headers=headers)
            assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "TOKEN_REVOKED"


@pytest.fixture
async def exploding_client(settings_factory) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    app = create_app(settings_factory())

    @app.get("/boom")
    async def boom(_: None = Depends(public)) -> None:
        raise RuntimeError("kaboom")

    async with LifespanManager(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        ) as client:
            yield client


async def test_unhandled_error_is_a_500_envelope_without_internals(exploding_client: httpx.AsyncClient) -> None:
    response = await exploding_client.get("/boom")
    assert response.status_code == 500
    body = assert_envelope(response, success=False)
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert "kaboom" not in response.text


async def test_metrics_use_route_templates(client: httpx.AsyncClient, login) -> None:  # type: ignore[no-untyped-def]
    headers = await login("user")
    await client.delete("/auth/api-keys/987654", headers=headers)
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{endpoint="/auth/api-keys/{key_id}",method="DELETE",status_code="404"}' in text
    assert "/auth/api-keys/987654" not in text
    sample = REGISTRY.get_sample_value(
        "http_request_duration_seconds_count", {"method": "DELETE", "endpoint": "/auth/api-keys/{key_id}"}
    )
    assert sample is not None and sample >= 1


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = await client.get("/openapi.json")
    assert "/api/v2/health" in schema.json()["paths"]
