"""The OpenAPI document: security schemes from each route's permission dependency.

Every route declares one :class:`~agentlightning.api.deps.PermissionCheck`. Here that declaration
becomes the operation's ``security`` (a bearer JWT or an ``X-API-Key``), so ``/docs`` shows an
Authorize button, and the permission is named in the operation (``x-permission``). Public routes
carry no security and do not document 401/403. Nothing here runs per request: the document is
built once, on the first ``GET /openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from agentlightning.api.deps import PermissionCheck

BEARER = "bearerAuth"
API_KEY = "apiKeyAuth"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /auth/login (Authorization: Bearer <token>)",
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key from POST /auth/api-keys",
    },
}


def _routes(app: FastAPI) -> Iterator[tuple[APIRoute, str]]:
    """Every API route with its full path, through included routers."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI versions that flatten included routers into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route, route.path
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context.original_route, str(context.path)


def permission_of(route: APIRoute) -> PermissionCheck | None:
    """The route's permission dependency (found anywhere in its dependency tree)."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, PermissionCheck):
            return dependant.call
        stack.extend(dependant.dependencies)
    return None


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` with its security schemes applied per route."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    for route, path in _routes(app):
        check = permission_of(route)
        # The document names a converter-typed parameter without its converter ({model:path} -> {model}).
        operations = schema.get("paths", {}).get(re.sub(r":\w+}", "}", path), {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None or check is None:
                continue
            if path.startswith("/v1/"):  # OpenAI-compatible: invalid input is a 400 there, never a 422
                operation.get("responses", {}).pop("422", None)
            if check.access == "public":
                for status in ("401", "403"):
                    operation.get("responses", {}).pop(status, None)
                continue
            operation["security"] = [{BEARER: []}, {API_KEY: []}]
            if check.permission is not None:
                operation["x-permission"] = check.permission
                note = f"Requires permission `{check.permission}`."
            else:
                note = "Requires any authenticated user."
            operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{note}".lstrip()
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document (built on first use, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
