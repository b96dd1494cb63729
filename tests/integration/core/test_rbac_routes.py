"""Walks every route the app registers and checks each role is allowed or refused per the spec.

A route that declares no permission fails here, so no endpoint can ship unprotected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute

from agentlightning.api.deps import PermissionCheck
from agentlightning.auth import tokens
from agentlightning.auth.rbac import ROLES, grants, permissions_for
from agentlightning.auth.service import create_user
from tests.helpers import TEST_SECRET, unique

#: Framework routes that carry no data (the OpenAPI schema and docs pages).
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def permission_checks(route: APIRoute | APIWebSocketRoute) -> list[PermissionCheck]:
    """Every PermissionCheck in the route's dependency tree."""
    found: list[PermissionCheck] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, PermissionCheck):
            found.append(dependant.call)
        stack.extend(dependant.dependencies)
    return found


def iter_routes(app: FastAPI) -> Iterator[tuple[APIRoute | APIWebSocketRoute, str]]:
    """Every API and WebSocket route with its full path, through included routers."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI versions that flatten included routers into app.routes
        for route in app.routes:
            if isinstance(route, (APIRoute, APIWebSocketRoute)):
                yield route, route.path
        return
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, (APIRoute, APIWebSocketRoute)):
            yield route, str(context.path)


def concrete_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "999999", path)


def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    undeclared = []
    seen = 0
    for route, path in iter_routes(app):
        if path not in FRAMEWORK_PATHS:
            seen += 1
            if len(permission_checks(route)) != 1:
                undeclared.append(path)
    assert seen >= 10
    assert undeclared == [], f"routes without exactly one permission declaration: {undeclared}"


async def test_each_role_is_allowed_or_refused_as_the_table_says(client: httpx.AsyncClient, app: FastAPI) -> None:
    users: dict[str, Any] = {}
    for role in ROLES:
        users[role] = await create_user(app.state.ctx, unique(role), "correct-horse-battery", role)

    def token_for(role: str) -> str:
        user = users[role]
        return tokens.issue_access_token(
            user_id=user.id,
            username=user.username,
            role=role,
            secret=TEST_SECRET,
            issuer="agent-lightning",
            ttl_seconds=300,
        )[0]

    checked = 0
    for route, template in iter_routes(app):
        if not isinstance(route, APIRoute) or template in FRAMEWORK_PATHS:
            continue
        (check,) = permission_checks(route)
        path = concrete_path(template)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            anonymous = await client.request(method, path, json={} if method in {"POST", "PUT", "PATCH"} else None)
            if check.access == "public":
                assert anonymous.status_code not in (401, 403), (method, template, anonymous.text)
            else:
                assert anonymous.status_code == 401, (method, template, anonymous.status_code)
            for role in ROLES:
                response = await client.request(
                    method,
                    path,
                    headers={"Authorization": f"Bearer {token_for(role)}"},
                    json={} if method in {"POST", "PUT", "PATCH"} else None,
                )
                allowed = check.access != "permission" or grants(permissions_for(role), check.permission or "")
                if allowed:
                    assert response.status_code not in (401, 403), (role, method, template, response.text)
                else:
                    assert response.status_code == 403, (role, method, template, response.status_code)
                    assert response.json()["error"]["code"] == "FORBIDDEN"
                checked += 1
    assert checked >= 3 * 10
