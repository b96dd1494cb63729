"""Request bodies over the configured size are refused with 413 PAYLOAD_TOO_LARGE in the envelope,
whether announced by Content-Length or streamed in chunks without one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agentlightning.api.app import create_app
from agentlightning.settings import Settings
from tests.helpers import login_as

LIMIT = 4096


@pytest.fixture
async def limited(settings_factory: Callable[..., Settings]) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = create_app(settings_factory(max_request_body_bytes=LIMIT))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, app


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-frame-options"] == "DENY"


async def test_announced_oversized_body_is_refused(limited: tuple[httpx.AsyncClient, object]) -> None:
    client, _ = limited
    big = b'{"username": "' + b"a" * (2 * LIMIT) + b'", "password": "x"}'
    _assert_413(await client.post("/auth/login", content=big, headers={"content-type": "application/json"}))


async def test_chunked_oversized_body_is_refused_while_reading(limited: tuple[httpx.AsyncClient, object]) -> None:
    client, app = limited
    headers = await login_as(client, app, "developer")  # type: ignore[arg-type]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "t", "content": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post(
        "/api/v2/knowledge", content=chunks(), headers={**headers, "content-type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _assert_413(response)


async def test_bodies_under_the_limit_pass(limited: tuple[httpx.AsyncClient, object]) -> None:
    client, _ = limited
    response = await client.post("/auth/login", json={"username": "nobody-here", "password": "x" * 100})
    assert response.status_code == 401
