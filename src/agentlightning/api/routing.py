"""Route lookup: a parameterless path finds its route with one dictionary lookup.

Starlette's router tries each route's regular expression in order until one matches, so a
request for a route registered late pays for every route before it. :class:`StaticRouteIndex`
sits in front of the app's router (as its ``middleware_stack``) and maps ``(method, path)`` to
the route the router itself would select, computed once by running the router's own matching
over every route without path parameters. Anything else (a path with parameters, an unknown
path, a method the path does not allow: the 404 and 405 responses) goes through the router
unchanged. The selected route still runs its own ``matches`` on the request, so the scope it
sets (endpoint, path parameters, route) is exactly the router's.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Host, Match, Route, Router, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

#: Route classes whose match depends only on the path and method (a ``Mount`` matches a prefix).
_PLAIN_ROUTES = (Route, WebSocketRoute)


def first_full_match(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """The route Starlette's router selects for ``method path`` (the first full match), if any."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def build_static_index(routes: list[BaseRoute]) -> dict[tuple[str, str], BaseRoute]:
    """``(method, path)`` to route for every HTTP route without path parameters.

    Each entry is what the router's own linear matching returns for that request, so an earlier
    route whose pattern also matches the path (``/items/{id}`` before ``/items/stats``) keeps
    winning, and so does a ``Mount`` before it whose prefix covers the path (the mount is then
    the entry, as the router would pick it). Routes after a ``Host`` are left to the router (a
    host matches on a header, not the path).
    """
    index: dict[tuple[str, str], BaseRoute] = {}
    for position, route in enumerate(routes):
        if isinstance(route, Host):
            break
        if not isinstance(route, _PLAIN_ROUTES):
            continue
        if not isinstance(route, Route) or route.param_convertors or not route.methods:
            continue
        for method in route.methods:
            selected = first_full_match(routes[: position + 1], method, route.path)
            if selected is not None:
                index.setdefault((method, route.path), selected)
    return index


class StaticRouteIndex:
    """The app's router with a dictionary in front for parameterless paths (see the module)."""

    def __init__(self, router: Router, fallback: ASGIApp) -> None:
        self.router = router
        self.fallback = fallback
        self._index: dict[tuple[str, str], BaseRoute] = {}
        self._built_for: tuple[int, int] | None = None

    def index(self) -> dict[tuple[str, str], BaseRoute]:
        """The lookup table, rebuilt whenever the router's route list changes."""
        version = (id(self.router.routes), len(self.router.routes))
        if version != self._built_for:
            self._index = build_static_index(list(self.router.routes))
            self._built_for = version
        return self._index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI's own request telemetry and a mounted root path take the router's full path.
        if scope["type"] == "http" and not scope.get("root_path") and "fastapi.telemetry" not in scope:
            route = self.index().get((scope["method"], scope["path"]))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match == Match.FULL:
                    if "router" not in scope:
                        scope["router"] = self.router
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.fallback(scope, receive, send)


def install_static_route_index(router: Router) -> StaticRouteIndex:
    """Put a :class:`StaticRouteIndex` in front of ``router`` (after its own router middleware)."""
    if getattr(router, "form_limits", None):
        raise ValueError("router-level form limits are applied by the router's own matching")
    index = StaticRouteIndex(router, router.middleware_stack)
    router.middleware_stack = index
    return index
