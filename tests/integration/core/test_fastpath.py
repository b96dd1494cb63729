"""Plain routes are served by the direct handler (api/fastpath.py), which answers exactly as
FastAPI's own handler: the same status, headers and body for successes, 401/403, 404 and 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from agentlightning.api.deps import public
from agentlightning.api.fastpath import DirectRoute, plain_route


def _served_directly(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.router.routes
        if isinstance(route, APIRoute) and plain_route(route)
        for method in route.methods or ()
    }


async def test_plain_routes_are_the_bodiless_ones(app: FastAPI) -> None:
    served = _served_directly(app)
    assert {("GET", "/api/v2/health"), ("GET", "/auth/profile"), ("GET", "/api/v2/agents")} <= served
    assert ("GET", "/api/v2/agents/{agent_ref}") in served  # path parameters are fine
    # A body (or a dependency with ``yield``) keeps FastAPI's own handler.
    assert ("POST", "/auth/login") not in served and ("POST", "/api/v2/agents") not in served


async def test_overrides_take_the_routes_own_app(app: FastAPI, client: httpx.AsyncClient) -> None:
    """When the route's overrides provider (the one FastAPI's handler reads) has overrides, the
    request goes to the route's original app, which applies them."""
    route = next(r for r in app.router.routes if isinstance(r, APIRoute) and r.path == "/api/v2/health")
    direct = route.app
    assert isinstance(direct, DirectRoute)
    taken: list[str] = []

    async def original(scope: Scope, receive: Receive, send: Send) -> None:
        taken.append(scope["path"])
        await direct.fallback(scope, receive, send)

    class Provider:
        dependency_overrides: dict[Any, Any] = {}

    provider, saved = Provider(), route.dependency_overrides_provider
    route.dependency_overrides_provider = provider
    route.app = DirectRoute(route, original)
    try:
        assert (await client.get("/api/v2/health")).status_code == 200
        assert taken == []  # no overrides: the direct handler
        provider.dependency_overrides[public] = public
        assert (await client.get("/api/v2/health")).status_code == 200
        assert taken == ["/api/v2/health"]
    finally:
        route.app, route.dependency_overrides_provider = direct, saved


#: Values that change between the two passes: the clock, the request, measured latencies.
_MOVING = frozenset({"timestamp", "request_id", "uptime_seconds", "latency_ms"})


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in _MOVING}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    body = _steady(response.json())
    headers = {k: v for k, v in response.headers.items() if k not in {"x-request-id", "content-length", "date"}}
    return response.status_code, headers, body


async def test_same_answers_as_fastapis_handler(
    app: FastAPI, client: httpx.AsyncClient, login: Callable[..., Any]
) -> None:
    user = await login("user")
    admin = await login("admin")
    requests: list[tuple[str, dict[str, str]]] = [
        ("/api/v2/health", {}),
        ("/api/v2/health?ready=true", {}),
        ("/api/v2/health?ready=maybe", {}),  # 422 naming query.ready
        ("/auth/profile", user),
        ("/auth/profile", {}),  # 401: no credentials
        ("/auth/profile", {"Authorization": "Bearer not-a-token"}),  # 401: invalid
        ("/api/v2/system/config", user),  # 403: a user lacks system:read
        ("/api/v2/system/config", admin),
        ("/api/v2/agents", user),
        ("/api/v2/agents?page=0", user),  # 422 from a query bound
        ("/api/v2/agents?page=1&page_size=2&status=active", user),
        ("/api/v2/agents?status=sleeping", user),  # 422: not in the vocabulary
        ("/api/v2/agents/999999", user),  # 404
        ("/api/v2/tasks/0", user),  # 422: the id's lower bound
        ("/api/v2/agents", {}),  # 401 before any parameter is looked at
        ("/api/v2/agents?page=0", {}),  # still 401, not 422: the permission comes first
    ]
    direct = [_comparable(await client.get(path, headers=headers)) for path, headers in requests]
    routes = [route for route in app.router.routes if isinstance(route.app, DirectRoute)]  # type: ignore[attr-defined]
    assert len(routes) == len(_served_directly(app))
    for route in routes:  # back to FastAPI's own handlers
        route.app = route.app.fallback  # type: ignore[attr-defined]
    try:
        solver = [_comparable(await client.get(path, headers=headers)) for path, headers in requests]
    finally:
        for route in routes:
            route.app = DirectRoute(route, route.app)  # type: ignore[attr-defined,arg-type]
    for (path, _), fast, slow in zip(requests, direct, solver):
        assert fast == slow, path
    statuses = [status for status, _, _ in direct]
    assert statuses.count(200) >= 5 and {401, 403, 404, 422} <= set(statuses)
    assert direct[-1][0] == 401 and direct[-1][2]["error"]["code"] == "AUTHENTICATION_REQUIRED"
