"""A direct request handler for plain routes: the permission check and parameters without the solver.

FastAPI serves a route by running its generic dependency solver on every request: it walks the
dependency tree, builds a throwaway ``Response`` and a cache, classifies each callable, and opens
two exit stacks for dependencies with ``yield``. Most of our routes need none of that: their
dependencies are the permission check (``require(...)``, ``authenticated``, ``public``) and the
context (``Ctx``), both plain ``async`` callables of the request, and their other parameters are
path and query parameters. For such a *plain* route (see :func:`plain_route`),
:func:`install_fast_handlers` swaps the route's ASGI app for one that:

1. awaits the route's dependencies in the order the solver would (before any parameter, so a
   missing token is still a 401 before a bad query value is a 422);
2. validates path, query, header and cookie parameters with FastAPI's own
   ``request_params_to_args`` (the same coercion, the same error list for the 422);
3. awaits the endpoint and turns its result into a response with FastAPI's own
   ``serialize_response`` against the route's response model (validated, undeclared keys
   dropped, JSON written by Pydantic), exactly as the route's own handler would.

Nothing about the route changes otherwise: its ``dependant`` (what ``/openapi.json`` and the
permission walkers read), its response model and its responses are the ones declared. A request
that FastAPI would treat differently takes the route's original app (:attr:`DirectRoute.fallback`):
when the route's dependency-overrides provider has overrides, or FastAPI's request telemetry is on.
``tests/integration/core/test_fastpath.py`` compares the two apps' answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant, _is_async_gen_callable, _is_coroutine_callable, _is_gen_callable
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _extract_endpoint_context, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentlightning.api.deps import PermissionCheck, get_ctx

#: Dependencies a plain route may have: plain ``async`` callables of the request alone.
_DIRECT_CALLS: tuple[type, ...] = (PermissionCheck,)
_DIRECT_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset({get_ctx})


def _request_only(dependant: Dependant) -> bool:
    """A dependency that takes the request and nothing else, awaited directly (no ``yield``)."""
    call = dependant.call
    if not (isinstance(call, _DIRECT_CALLS) or call in _DIRECT_FUNCTIONS):
        return False
    if _is_gen_callable(call) or _is_async_gen_callable(call) or not _is_coroutine_callable(call):
        return False
    return (
        dependant.request_param_name is not None
        and not dependant.dependencies
        and not (dependant.path_params or dependant.query_params or dependant.header_params)
        and not (dependant.cookie_params or dependant.body_params)
        and dependant.websocket_param_name is None
        and dependant.http_connection_param_name is None
        and dependant.response_param_name is None
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
        and not dependant.own_oauth_scopes
        and dependant.concurrency is None
    )


def plain_route(route: APIRoute) -> bool:
    """True when ``route`` can be served by :class:`DirectRoute` with FastAPI's exact behaviour: an
    ``async`` endpoint with no body, no streaming, no ``Response``/``BackgroundTasks``/
    ``SecurityScopes`` parameter, and only request-only dependencies (each at most once)."""
    dependant = route.dependant
    call = dependant.call
    if call is None or not _is_coroutine_callable(call) or _is_gen_callable(call) or _is_async_gen_callable(call):
        return False
    if route.body_field is not None or dependant.body_params or route.max_body_size is not None:
        return False
    if route.is_sse_stream or route.is_json_stream or route.stream_item_field is not None:
        return False
    if (
        dependant.websocket_param_name is not None
        or dependant.response_param_name is not None
        or dependant.background_tasks_param_name is not None
        or dependant.security_scopes_param_name is not None
    ):
        return False
    calls = [sub.call for sub in dependant.dependencies]
    if len({id(c) for c in calls}) != len(calls):
        return False  # the solver would call a repeated dependency once; keep its cache semantics
    return all(_request_only(sub) for sub in dependant.dependencies)


_IMMUTABLE = (type(None), bool, int, float, str, bytes)


def _constant_empty_query(fields: list[ModelField]) -> dict[str, Any] | None:
    """The query parameters' values for a request without a query string, when constant: no
    error (nothing required), immutable values, no default factory."""
    if any(field.field_info.default_factory is not None for field in fields):
        return None
    values, errors = request_params_to_args(fields, QueryParams(""))
    if errors or not all(type(value) in _IMMUTABLE for value in values.values()):
        return None
    return values


def _direct_handler(route: APIRoute) -> Callable[[Request], Awaitable[Response]]:
    """``request -> response`` for a :func:`plain_route`, as FastAPI's handler computes it."""
    dependant = route.dependant
    endpoint = dependant.call
    assert endpoint is not None
    dependencies = [(sub.name, sub.call) for sub in dependant.dependencies]
    request_name = dependant.request_param_name
    connection_name = dependant.http_connection_param_name
    # In the solver's order: path, query, headers, cookies. For the query, what the solver makes of an
    # absent query string is computed once, by the solver's own function, when it is the same
    # every time (see _constant_empty_query); a request without a query string reuses it.
    sources = [
        (fields, source, _constant_empty_query(fields) if source == "query_params" else None)
        for fields, source in (
            (dependant.path_params, "path_params"),
            (dependant.query_params, "query_params"),
            (dependant.header_params, "headers"),
            (dependant.cookie_params, "cookies"),
        )
        if fields
    ]
    response_field = route.response_field
    # As FastAPI's handler: Pydantic writes the bytes when the route keeps the default response class.
    dump_json = response_field is not None and isinstance(route.response_class, DefaultPlaceholder)
    response_class: type[Response] = (
        route.response_class.value if isinstance(route.response_class, DefaultPlaceholder) else route.response_class
    )
    status_code = route.status_code
    endpoint_ctx = _extract_endpoint_context(endpoint)
    options = {
        "include": route.response_model_include,
        "exclude": route.response_model_exclude,
        "by_alias": route.response_model_by_alias,
        "exclude_unset": route.response_model_exclude_unset,
        "exclude_defaults": route.response_model_exclude_defaults,
        "exclude_none": route.response_model_exclude_none,
    }

    async def handle(request: Request) -> Response:
        values: dict[str, Any] = {}
        for name, call in dependencies:
            solved = await call(request)  # type: ignore[misc]  # request-only by plain_route
            if name is not None:
                values[name] = solved
        errors: list[Any] = []
        for fields, source, constant in sources:
            if constant is not None and not request.scope.get("query_string"):
                values.update(constant)
                continue
            found, failed = request_params_to_args(fields, getattr(request, source))
            values.update(found)
            errors += failed
        if errors:
            where = dict(endpoint_ctx)
            if dependant.path:
                where["path"] = f"{request.method} {request.scope.get('root_path', '').rstrip('/')}{dependant.path}"
            raise RequestValidationError(errors, body=None, endpoint_ctx=where)  # type: ignore[arg-type]
        if request_name is not None:
            values[request_name] = request
        if connection_name is not None:
            values[connection_name] = request
        raw = await endpoint(**values)
        if isinstance(raw, Response):
            return raw
        content = await serialize_response(
            field=response_field,
            response_content=raw,
            is_coroutine=True,
            endpoint_ctx=endpoint_ctx,
            dump_json=dump_json,
            **options,  # type: ignore[arg-type]
        )
        kwargs: dict[str, Any] = {} if status_code is None else {"status_code": status_code}
        if dump_json:
            response = Response(content=content, media_type="application/json", **kwargs)
        else:
            response = response_class(content, **kwargs)
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        return response

    return handle


class DirectRoute:
    """The ASGI app of a :func:`plain_route`; ``fallback`` is the route's own (FastAPI's) app."""

    def __init__(self, route: APIRoute, fallback: ASGIApp) -> None:
        self.route = route
        self.fallback = fallback
        self.handle = _direct_handler(route)
        self._overrides = route.dependency_overrides_provider  # whose overrides FastAPI's handler reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        overrides = self._overrides
        if (overrides is not None and overrides.dependency_overrides) or "fastapi.telemetry" in scope:
            await self.fallback(scope, receive, send)
            return
        request = Request(scope, receive, send)
        handle = self.handle

        async def respond(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handle(request)
            await response(scope, receive, send)

        # As Starlette's request_response: the app's exception handlers answer what the route raised.
        await wrap_app_handling_exceptions(respond, request)(scope, receive, send)


def install_fast_handlers(app: FastAPI) -> list[APIRoute]:
    """Serve every :func:`plain_route` of ``app`` with a :class:`DirectRoute`; the routes so served."""
    served = []
    for route in app.router.routes:
        if isinstance(route, APIRoute) and plain_route(route) and not isinstance(route.app, DirectRoute):
            route.app = DirectRoute(route, route.app)
            served.append(route)
    return served
