"""Route lookup: flat routes and the static-path index select exactly what FastAPI/Starlette would."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Match, Route

from agentlightning.api.app import add_routes_flat, create_app
from agentlightning.api.deps import public
from agentlightning.api.routes import ROUTERS
from agentlightning.api.routing import StaticRouteIndex, build_static_index, first_full_match


def _signature(routes: list) -> list[tuple[str, str, frozenset[str], object]]:  # type: ignore[type-arg]
    """(class, path, methods, endpoint) of every route, through included routers."""
    return [
        (
            type(ctx.original_route).__name__,
            str(ctx.path),
            frozenset(getattr(ctx.original_route, "methods", None) or ()),
            getattr(ctx.original_route, "endpoint", None),
        )
        for ctx in iter_route_contexts(routes)
    ]


def test_flat_routes_are_the_included_ones() -> None:
    bare = {"openapi_url": None, "docs_url": None, "redoc_url": None}
    included = FastAPI(**bare)
    for router in ROUTERS:
        included.include_router(router)
    flat = FastAPI(**bare)
    add_routes_flat(flat, ROUTERS)
    assert _signature(flat.router.routes) == _signature(included.router.routes)
    assert len(flat.router.routes) > 50


def test_flat_routes_refuse_include_time_options() -> None:
    with pytest.raises(ValueError):
        add_routes_flat(FastAPI(), [APIRouter(dependencies=[Depends(public)])])
    untyped = APIRouter()

    @untyped.get("/untyped", response_model=None)
    async def no_model() -> dict[str, str]:
        return {}

    with pytest.raises(ValueError):
        add_routes_flat(FastAPI(), [untyped])


def test_index_gives_starlettes_route_for_every_static_path(settings_factory) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_factory())
    routes = list(app.router.routes)
    index = build_static_index(routes)
    static = [r for r in routes if isinstance(r, Route) and not r.param_convertors and r.methods]
    assert len(static) > 20
    for route in static:
        for method in route.methods or ():
            assert index[(method, route.path)] is first_full_match(routes, method, route.path)
    # Only parameterless paths are indexed; the rest is left to the router.
    assert all("{" not in path for _, path in index)


def test_an_earlier_pattern_keeps_winning() -> None:
    async def endpoint(_: object) -> None:
        return None

    by_id = Route("/items/{item_id}", endpoint, methods=["GET"])
    stats = Route("/items/stats", endpoint, methods=["GET", "POST"])
    index = build_static_index([by_id, stats])
    assert index[("GET", "/items/stats")] is by_id  # Starlette picks the pattern registered first
    assert index[("POST", "/items/stats")] is stats
    assert by_id.matches({"type": "http", "method": "GET", "path": "/items/stats"})[0] == Match.FULL


async def test_requests_through_the_index_and_around_it(settings_factory) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_factory())
    assert isinstance(app.router.middleware_stack, StaticRouteIndex)

    @app.get("/late", response_model=None)  # a route added after create_app is indexed too
    async def late(_: None = Depends(public)) -> dict[str, str]:
        return {"late": "yes"}

    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            health = await client.get("/api/v2/health")
            assert health.status_code == 200 and health.json()["data"]["status"] == "healthy"
            assert (await client.get("/late")).json() == {"late": "yes"}
            assert ("GET", "/late") in app.router.middleware_stack.index()
            # 405 and 404 are the router's, unchanged.
            not_allowed = await client.delete("/api/v2/health")
            assert not_allowed.status_code == 405 and not_allowed.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
            assert (await client.get("/api/v2/health/")).status_code in (307, 404)
            missing = await client.get("/api/v2/no-such-route")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
            # A path with parameters goes through the router's matching (401: authenticated route).
            assert (await client.get("/api/v2/agents/123")).status_code == 401


def test_a_mount_shadows_later_routes_under_its_prefix_as_in_the_router() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount

    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [
        Route("/before", ok),
        Mount("/static", app=Starlette()),
        Route("/static/shadowed", ok),
        Route("/after", ok),
    ]
    index = build_static_index(routes)
    assert index[("GET", "/before")] is routes[0]
    assert index[("GET", "/after")] is routes[3]  # routes after a mount are still indexed
    assert index[("GET", "/static/shadowed")] is routes[1]  # the router would pick the mount
