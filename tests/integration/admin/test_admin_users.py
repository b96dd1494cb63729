"""User administration over HTTP (``/api/v2/admin``) and its audit log, on both backends.

Hostile cases: developers and users are refused, the last active admin can be neither demoted nor
disabled, bad input is a 422, and the target's tokens end on a role change, disable and reset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from agentlightning.auth import service
from agentlightning.storage.models import User
from tests.helpers import unique

Login = Callable[[str], Awaitable[dict[str, str]]]
PASSWORD = "correct-horse-battery"


async def _create(client: httpx.AsyncClient, admin: dict[str, str], role: str = "user") -> dict[str, Any]:
    username = unique("adm")
    response = await client.post(
        "/api/v2/admin/users", json={"username": username, "password": PASSWORD, "role": role}, headers=admin
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def _token(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def _bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def test_admin_creates_lists_and_reads_users(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    created = await _create(client, admin, "developer")
    assert created["role"] == "developer" and created["is_active"] is True
    assert "password" not in created and "password_hash" not in created

    listed = await client.get("/api/v2/admin/users", params={"search": created["username"]}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert [u["username"] for u in listed.json()["data"]["items"]] == [created["username"]]
    by_role = await client.get("/api/v2/admin/users", params={"role": "developer", "page_size": 500}, headers=admin)
    assert created["id"] in {u["id"] for u in by_role.json()["data"]["items"]}
    one = await client.get(f"/api/v2/admin/users/{created['id']}", headers=admin)
    assert one.json()["data"]["username"] == created["username"]

    # The new user can log in with the password the admin set.
    await _token(client, created["username"])

    duplicate = await client.post(
        "/api/v2/admin/users", json={"username": created["username"], "password": PASSWORD}, headers=admin
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "USER_EXISTS"


async def test_role_change_disable_and_reset_end_the_targets_tokens(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    target = await _create(client, admin, "developer")
    url = f"/api/v2/admin/users/{target['id']}"

    # Role change: the old access token (naming the old role) is refused at once.
    pair = await _token(client, target["username"])
    assert (await client.get("/auth/profile", headers=_bearer(pair))).status_code == 200
    changed = await client.patch(url, json={"role": "user"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["data"]["role"] == "user"
    assert (await client.get("/auth/profile", headers=_bearer(pair))).status_code == 401

    # Disable: access token and refresh token both end; login is refused.
    pair = await _token(client, target["username"])
    disabled = await client.patch(url, json={"is_active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["data"]["is_active"] is False
    assert (await client.get("/auth/profile", headers=_bearer(pair))).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401
    refused = await client.post("/auth/login", json={"username": target["username"], "password": PASSWORD})
    assert refused.status_code == 401
    assert (await client.patch(url, json={"is_active": True}, headers=admin)).status_code == 200

    # Password reset: old tokens end, the old password no longer works, the new one does.
    pair = await _token(client, target["username"])
    reset = await client.post(f"{url}/password", json={"password": "another-long-passphrase"}, headers=admin)
    assert reset.status_code == 200, reset.text
    assert (await client.get("/auth/profile", headers=_bearer(pair))).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401
    old = await client.post("/auth/login", json={"username": target["username"], "password": PASSWORD})
    assert old.status_code == 401
    await _token(client, target["username"], "another-long-passphrase")

    # Each change is in the audit log, newest first, with who, what, details and the request id.
    audit = await client.get(
        "/api/v2/admin/audit", params={"target_type": "user", "target_id": target["id"]}, headers=admin
    )
    assert audit.status_code == 200, audit.text
    entries = audit.json()["data"]["items"]
    assert [e["action"] for e in entries] == [
        "user.password_reset",
        "user.enabled",
        "user.disabled",
        "user.role_changed",
        "user.created",
    ]
    role_change = entries[3]
    assert role_change["details"] == {"from": "developer", "to": "user"}
    assert role_change["target"] == target["username"]
    assert role_change["actor"].startswith("admin-") and role_change["actor_id"] is not None
    assert all(e["request_id"] for e in entries)
    assert "another-long-passphrase" not in audit.text and PASSWORD not in audit.text
    only_resets = await client.get("/api/v2/admin/audit", params={"action": "user.password_reset"}, headers=admin)
    assert {e["action"] for e in only_resets.json()["data"]["items"]} == {"user.password_reset"}


async def test_request_id_of_the_change_is_recorded(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    target = await _create(client, admin)
    response = await client.patch(
        f"/api/v2/admin/users/{target['id']}",
        json={"role": "developer"},
        headers={**admin, "X-Request-ID": "req-audit-check-1"},
    )
    assert response.status_code == 200
    audit = await client.get("/api/v2/admin/audit", params={"target_id": target["id"]}, headers=admin)
    assert audit.json()["data"]["items"][0]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("role", ["developer", "user"])
async def test_non_admins_are_refused(client: httpx.AsyncClient, login: Login, role: str) -> None:
    admin = await login("admin")
    target = await _create(client, admin)
    caller = await login(role)
    calls = [
        ("GET", "/api/v2/admin/users", None),
        ("POST", "/api/v2/admin/users", {"username": unique("x"), "password": PASSWORD, "role": "admin"}),
        ("GET", f"/api/v2/admin/users/{target['id']}", None),
        ("PATCH", f"/api/v2/admin/users/{target['id']}", {"role": "admin"}),
        ("PATCH", f"/api/v2/admin/users/{target['id']}", {"is_active": False}),
        ("POST", f"/api/v2/admin/users/{target['id']}/password", {"password": "attacker-chosen-pw"}),
        ("GET", "/api/v2/admin/audit", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=caller)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "FORBIDDEN"
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    # Nothing changed.
    again = await client.get(f"/api/v2/admin/users/{target['id']}", headers=admin)
    assert again.json()["data"]["role"] == "user" and again.json()["data"]["is_active"] is True


async def test_bad_input_is_a_422(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    target = await _create(client, admin)
    url = f"/api/v2/admin/users/{target['id']}"
    bad: list[tuple[str, str, Any]] = [
        ("POST", "/api/v2/admin/users", {"username": "x", "password": PASSWORD, "role": "root"}),
        ("POST", "/api/v2/admin/users", {"username": "", "password": PASSWORD}),
        ("POST", "/api/v2/admin/users", {"username": "has space", "password": PASSWORD}),
        ("POST", "/api/v2/admin/users", {"username": "nul\u0000", "password": PASSWORD}),
        ("POST", "/api/v2/admin/users", {"username": unique("ok"), "password": "short"}),
        ("POST", "/api/v2/admin/users", {"username": unique("ok"), "password": PASSWORD, "is_admin": True}),
        ("PATCH", url, {}),
        ("PATCH", url, {"role": "superuser"}),
        ("PATCH", url, {"is_active": "maybe"}),
        ("POST", f"{url}/password", {"password": "short"}),
        ("POST", f"{url}/password", {}),
        ("GET", "/api/v2/admin/users/0", None),
        ("GET", "/api/v2/admin/users/99999999999", None),
        ("GET", "/api/v2/admin/users?role=root", None),
        ("GET", "/api/v2/admin/users?page_size=100000", None),
        ("GET", "/api/v2/admin/audit?action=user.deleted", None),
    ]
    for method, path, body in bad:
        response = await client.request(method, path, json=body, headers=admin)
        assert response.status_code == 422, (method, path, body, response.status_code, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    missing = await client.patch("/api/v2/admin/users/2000000000", json={"role": "user"}, headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "USER_NOT_FOUND"


async def test_last_active_admin_cannot_be_demoted_or_disabled(
    client: httpx.AsyncClient, login: Login, app: FastAPI
) -> None:
    ctx = app.state.ctx
    admin = await login("admin")
    me = (await client.get("/auth/profile", headers=admin)).json()["data"]
    async with ctx.db.session() as session:
        others = [
            name
            for name in (
                await session.scalars(
                    select(User.username).where(
                        User.role == "admin", User.is_active.is_(True), User.id != me["user_id"]
                    )
                )
            ).all()
        ]
    # Leave the caller as the only active admin (the command line may; it is the way back in).
    for name in others:
        await service.set_active(ctx, name, False)
    try:
        url = f"/api/v2/admin/users/{me['user_id']}"
        for body in ({"role": "developer"}, {"is_active": False}, {"role": "user", "is_active": False}):
            response = await client.patch(url, json=body, headers=admin)
            assert response.status_code == 409, (body, response.text)
            assert response.json()["error"]["code"] == "LAST_ADMIN"
        # A second admin makes it possible; then the first may step down.
        second = await _create(client, admin, "admin")
        stepped_down = await client.patch(url, json={"role": "developer"}, headers=admin)
        assert stepped_down.status_code == 200, stepped_down.text
        second_headers = _bearer(await _token(client, second["username"]))
        last = await client.patch(
            f"/api/v2/admin/users/{second['id']}", json={"is_active": False}, headers=second_headers
        )
        assert last.status_code == 409 and last.json()["error"]["code"] == "LAST_ADMIN"
    finally:
        for name in others:
            await service.set_active(ctx, name, True)
