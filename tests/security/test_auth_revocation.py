"""Revocation is immediate: a role change, a password change, a disabled account or a reused
refresh token ends the user's existing access tokens on the very next request, on both backends,
even though verified tokens are cached and the user's record is cached."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from agentlightning.api.app import create_app
from agentlightning.auth import service
from agentlightning.settings import Settings
from tests.helpers import unique

PASSWORD = "correct-horse-battery"


async def _signed_in(client: httpx.AsyncClient, app: FastAPI, role: str = "developer") -> tuple[str, dict[str, str]]:
    name = unique(role)
    await service.create_user(app.state.ctx, name, PASSWORD, role)
    pair = (await client.post("/auth/login", json={"username": name, "password": PASSWORD})).json()["data"]
    return name, {"Authorization": f"Bearer {pair['access_token']}", "X-Refresh": pair["refresh_token"]}


async def _profile(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/auth/profile", headers={"Authorization": headers["Authorization"]})


async def _warm(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Use the token a few times so its claims and the user's record are cached everywhere."""
    for _ in range(3):
        assert (await _profile(client, headers)).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ctx, name: service.set_role(ctx, name, "user"), id="role-change"),
        pytest.param(lambda ctx, name: service.set_password(ctx, name, "another-long-password"), id="password"),
        pytest.param(lambda ctx, name: service.set_active(ctx, name, False), id="disabled"),
    ],
)
async def test_user_changes_revoke_existing_access_tokens_at_once(
    client: httpx.AsyncClient, app: FastAPI, change: Callable[..., Awaitable[object]]
) -> None:
    name, headers = await _signed_in(client, app)
    _, bystander = await _signed_in(client, app)
    await _warm(client, headers)
    await change(app.state.ctx, name)
    refused = await _profile(client, headers)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "TOKEN_REVOKED"
    # Other users are untouched.
    assert (await _profile(client, bystander)).status_code == 200


async def test_role_change_keeps_the_session_and_refresh_brings_the_new_role(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    name, headers = await _signed_in(client, app)
    await _warm(client, headers)
    await service.set_role(app.state.ctx, name, "user")
    assert (await _profile(client, headers)).status_code == 401
    rotated = await client.post("/auth/refresh", json={"refresh_token": headers["X-Refresh"]})
    assert rotated.status_code == 200, rotated.text
    fresh = {"Authorization": f"Bearer {rotated.json()['data']['access_token']}"}
    profile = await client.get("/auth/profile", headers=fresh)
    assert profile.status_code == 200 and profile.json()["data"]["role"] == "user"
    # The demoted user lost developer rights at once.
    assert (await client.post("/api/v2/agents", json={}, headers=fresh)).status_code == 403


async def test_password_change_and_disable_end_sessions_too(client: httpx.AsyncClient, app: FastAPI) -> None:
    name, headers = await _signed_in(client, app)
    changed = await client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "a-brand-new-password"},
        headers={"Authorization": headers["Authorization"]},
    )
    assert changed.status_code == 200, changed.text
    assert (await _profile(client, headers)).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": headers["X-Refresh"]})).status_code == 401
    old = await client.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post("/auth/login", json={"username": name, "password": "a-brand-new-password"})
    assert new.status_code == 200

    other, other_headers = await _signed_in(client, app)
    await service.set_active(app.state.ctx, other, False)
    assert (await client.post("/auth/refresh", json={"refresh_token": other_headers["X-Refresh"]})).status_code == 401
    assert (await client.post("/auth/login", json={"username": other, "password": PASSWORD})).status_code == 401


async def test_wrong_current_password_changes_nothing(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, headers = await _signed_in(client, app)
    refused = await client.post(
        "/auth/password",
        json={"current_password": "not-my-password", "new_password": "a-brand-new-password"},
        headers={"Authorization": headers["Authorization"]},
    )
    assert refused.status_code == 401
    assert (await _profile(client, headers)).status_code == 200


async def test_refresh_token_reuse_revokes_the_stolen_access_token(client: httpx.AsyncClient, app: FastAPI) -> None:
    _, headers = await _signed_in(client, app)
    await _warm(client, headers)
    # The thief rotates first; the victim's (or thief's) replay of the spent token is detected.
    thief = await client.post("/auth/refresh", json={"refresh_token": headers["X-Refresh"]})
    assert thief.status_code == 200
    thief_headers = {"Authorization": f"Bearer {thief.json()['data']['access_token']}"}
    reused = await client.post("/auth/refresh", json={"refresh_token": headers["X-Refresh"]})
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "TOKEN_REUSED"
    assert (await _profile(client, headers)).status_code == 401
    assert (await client.get("/auth/profile", headers=thief_headers)).status_code == 401


async def test_logout_is_honoured_although_the_token_was_verified_before(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, headers = await _signed_in(client, app)
    await _warm(client, headers)
    auth = {"Authorization": headers["Authorization"]}
    assert (await client.post("/auth/logout", headers=auth)).status_code == 200
    assert (await client.get("/auth/profile", headers=auth)).status_code == 401


async def test_revocation_reaches_another_api_process_at_once(postgres_url: str, redis_url: str) -> None:
    """Two API processes sharing PostgreSQL and Redis: a role change made through one is refused by
    the other on the next request, although the other had the token and the user cached."""
    from tests.helpers import make_settings

    prefix = unique("revoke")
    settings: Settings = make_settings(postgres_url, redis_url, prefix)
    first, second = create_app(settings), create_app(settings)
    async with LifespanManager(first), LifespanManager(second):
        a = httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a")
        b = httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b")
        async with a, b:
            name, headers = await _signed_in(a, first)
            await _warm(b, headers)
            await service.set_role(first.state.ctx, name, "admin")
            assert (await _profile(b, headers)).status_code == 401


async def test_a_change_made_by_another_process_is_honoured_at_once(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    """``agentlightning users set-role|disable`` runs in its own process with its own context (and,
    on the embedded default, its own in-process cache): the server still refuses the token next."""
    from agentlightning.core.context import AppContext

    name, headers = await _signed_in(client, app)
    await _warm(client, headers)
    cli = await AppContext.create(settings)
    try:
        await service.set_active(cli, name, False)
    finally:
        await cli.close()
    refused = await _profile(client, headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "TOKEN_REVOKED"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Open WebSockets re-check their token every 0.2 s here (5 s by default)."""
    return settings_factory(ws_reauth_seconds=0.2)


async def test_an_open_websocket_closes_when_its_token_is_revoked(
    client: httpx.AsyncClient, app: FastAPI, live_url: str
) -> None:
    name, headers = await _signed_in(client, app)
    _, bystander = await _signed_in(client, app)
    token = headers["Authorization"].split(" ", 1)[1]
    other = bystander["Authorization"].split(" ", 1)[1]
    url = f"ws://{live_url}/ws/agents"
    async with websockets.connect(url, subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
        async with websockets.connect(url, subprotocols=["bearer", other]) as kept:  # type: ignore[list-item]
            assert '"connected"' in await asyncio.wait_for(ws.recv(), 30)
            assert '"connected"' in await asyncio.wait_for(kept.recv(), 30)
            await service.set_active(app.state.ctx, name, False)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:  # anything sent before the close is drained; the close must come
                    await asyncio.wait_for(ws.recv(), 30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            # The bystander's socket stays open and answers.
            await kept.send('{"action": "ping"}')
            assert '"pong"' in await asyncio.wait_for(kept.recv(), 30)
