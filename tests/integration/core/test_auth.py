"""Login, refresh rotation, logout revocation and API keys over HTTP, on both backends."""

from __future__ import annotations

import time

import httpx
import jwt
from fastapi import FastAPI

from agentlightning.auth.service import create_user
from agentlightning.storage import cache_keys
from tests.helpers import TEST_SECRET, unique

PASSWORD = "correct-horse-battery"


async def _user(app: FastAPI, role: str = "developer") -> str:
    name = unique(role)
    await create_user(app.state.ctx, name, PASSWORD, role)
    return name


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_returns_tokens_and_profile(client: httpx.AsyncClient, app: FastAPI) -> None:
    name = await _user(app)
    response = await _login(client, name)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["token_type"] == "bearer" and data["expires_in"] == 900
    payload = jwt.decode(data["access_token"], TEST_SECRET, algorithms=["HS256"], issuer="agent-lightning")
    assert set(payload) == {"user_id", "username", "role", "permissions", "exp", "iat", "iss"}
    profile = await client.get("/auth/profile", headers=_bearer(data["access_token"]))
    assert profile.status_code == 200
    assert profile.json()["data"]["username"] == name
    assert profile.json()["data"]["permissions"] == payload["permissions"]


async def test_wrong_password_and_unknown_user_look_the_same(client: httpx.AsyncClient, app: FastAPI) -> None:
    name = await _user(app)
    wrong = await _login(client, name, "not-the-password")
    unknown = await _login(client, unique("ghost"))
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_profile_requires_a_valid_token(client: httpx.AsyncClient) -> None:
    missing = await client.get("/auth/profile")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
    forged = jwt.encode(
        {
            "user_id": "1",
            "username": "admin",
            "role": "admin",
            "permissions": ["*"],
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
            "iss": "agent-lightning",
        },
        "guessed-secret-" + "q" * 40,
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {
            "user_id": "1",
            "username": "admin",
            "role": "admin",
            "permissions": ["*"],
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
            "iss": "agent-lightning",
        },
        None,
        algorithm="none",
    )
    for token in (forged, unsigned, "garbage.token.value"):
        response = await client.get("/auth/profile", headers=_bearer(token))
        assert response.status_code == 401
        assert response.json()["success"] is False
        assert response.json()["error"]["code"] == "TOKEN_INVALID"


async def test_refresh_rotates_and_reuse_revokes_the_session(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = (await _login(client, await _user(app))).json()["data"]
    rotated = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/auth/profile", headers=_bearer(second["access_token"]))).status_code == 200

    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "TOKEN_REUSED"
    # Reuse means theft: the whole session is gone, including the newest refresh token.
    after = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401 and after.json()["error"]["code"] == "TOKEN_INVALID"


async def test_logout_revokes_access_and_refresh_tokens(client: httpx.AsyncClient, app: FastAPI) -> None:
    pair = (await _login(client, await _user(app))).json()["data"]
    headers = _bearer(pair["access_token"])
    out = await client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=headers)
    assert out.status_code == 200
    revoked = await client.get("/auth/profile", headers=headers)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "TOKEN_REVOKED"
    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    digest = cache_keys.token_hash(pair["access_token"])
    assert await app.state.ctx.cache.exists(cache_keys.jwt_blacklist(digest))


async def test_login_creates_a_session_entry(client: httpx.AsyncClient, app: FastAPI) -> None:
    name = await _user(app)
    pair = (await _login(client, name)).json()["data"]
    ctx = app.state.ctx
    from sqlalchemy import select

    from agentlightning.storage.models import RefreshToken

    async with ctx.db.session() as session:
        record = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == cache_keys.token_hash(pair["refresh_token"]))
        )
    assert record is not None
    stored = await ctx.cache.get_json(cache_keys.session(record.session_id))
    assert stored["username"] == name


async def test_api_keys(client: httpx.AsyncClient, app: FastAPI) -> None:
    pair = (await _login(client, await _user(app, "user"))).json()["data"]
    headers = _bearer(pair["access_token"])
    created = await client.post("/auth/api-keys", json={"name": "ci-bot"}, headers=headers)
    assert created.status_code == 201
    key = created.json()["data"]["key"]
    assert key.startswith("agl_")

    via_header = await client.get("/auth/profile", headers={"X-API-Key": key})
    via_bearer = await client.get("/auth/profile", headers=_bearer(key))
    for response in (via_header, via_bearer):
        assert response.status_code == 200
        assert response.json()["data"]["auth_method"] == "api_key"
    listed = (await client.get("/auth/api-keys", headers=headers)).json()["data"]
    assert [k["name"] for k in listed] == ["ci-bot"] and "key" not in listed[0]

    revoked = await client.delete(f"/auth/api-keys/{created.json()['data']['id']}", headers=headers)
    assert revoked.status_code == 200
    after = await client.get("/auth/profile", headers={"X-API-Key": key})
    assert after.status_code == 401 and after.json()["error"]["code"] == "INVALID_API_KEY"
    bogus = await client.get("/auth/profile", headers={"X-API-Key": "agl_" + "A" * 43})
    assert bogus.status_code == 401


async def test_passwords_are_stored_with_bcrypt_cost_12(settings_factory) -> None:  # type: ignore[no-untyped-def]
    from agentlightning.core.context import AppContext
    from agentlightning.storage.models import User

    ctx = await AppContext.create(settings_factory(bcrypt_rounds=12))
    try:
        user = await create_user(ctx, unique("cost"), PASSWORD, "user")
        async with ctx.db.session() as session:
            stored = await session.get(User, user.id)
        assert stored is not None and stored.password_hash.startswith("$2b$12$")
        assert PASSWORD not in stored.password_hash
    finally:
        await ctx.close()
