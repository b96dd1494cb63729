"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.datastructures import Default, DefaultPlaceholder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentlightning import __version__
from agentlightning.api.deps import exposed
from agentlightning.api.envelope import FastJSONResponse, error_response, validation_error_body
from agentlightning.api.errors import headers_for, status_for
from agentlightning.api.fastpath import install_fast_handlers
from agentlightning.api.middleware import GatewayMiddleware, install_log_redaction
from agentlightning.api.openai_errors import (
    is_openai_path,
    openai_app_error,
    openai_error_response,
    openai_platform_code,
)
from agentlightning.api.openapi import install_openapi
from agentlightning.api.routes import ROUTERS
from agentlightning.api.routing import install_static_route_index
from agentlightning.api.tracing import instrument_engine, setup_tracing, tracing_requested
from agentlightning.auth.service import ensure_admin
from agentlightning.core.context import AppContext
from agentlightning.core.services import start_services, stop_services
from agentlightning.errors import AppError
from agentlightning.gateway.service import close_gateway
from agentlightning.observability.metrics import mark_process_dead
from agentlightning.settings import Settings, get_settings
from agentlightning.storage.faults import RETRY_AFTER_SECONDS, UNAVAILABLE_TYPES, is_bad_data, is_unavailable
from agentlightning.validation import JsonLimits, configure_limits

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if is_openai_path(request.url.path):  # the gateway's /v1 routes answer in OpenAI's format
        return openai_app_error(exc, status_for(exc), headers_for(exc))
    return error_response(exc.code, exc.message, exc.details, status_code=status_for(exc), headers=headers_for(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = "No such resource"
    if is_openai_path(request.url.path):
        return openai_error_response(
            exc.status_code, message, code=openai_platform_code(code), headers=getattr(exc, "headers", None)
        )
    return error_response(code, message, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def database_unavailable_response() -> JSONResponse:
    """The 503 a request gets when the database cannot be reached (retry after a second)."""
    return error_response(
        "DATABASE_UNAVAILABLE",
        "The database is unavailable; retry shortly",
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """Connection-level database failures (see :mod:`agentlightning.storage.faults`) are a 503;
    a value the database refused is a 422; anything else is a bug for the gateway's 500."""
    if is_bad_data(exc):
        log.warning("bad input reached the database on %s %s: %s", request.method, request.url.path, exc)
        if is_openai_path(request.url.path):
            return openai_error_response(422, "Invalid request: a value cannot be stored", code="invalid_value")
        return error_response(
            "VALIDATION_ERROR", "Invalid request: a value cannot be stored", {"errors": []}, status_code=422
        )
    if not is_unavailable(exc):
        raise exc  # a real bug (a constraint, a bad statement): the gateway's 500 handles it
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    if is_openai_path(request.url.path):
        return openai_error_response(
            503,
            "The database is unavailable; retry shortly",
            code="database_unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return database_unavailable_response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    status, body = validation_error_body(list(exc.errors()), exc.body)
    if is_openai_path(request.url.path):
        error = body["error"]
        fields = error.get("details", {}).get("errors") or [{}]
        return openai_error_response(
            status, error["message"], code=openai_platform_code(error["code"]), param=fields[0].get("field")
        )
    return FastJSONResponse(body, status_code=status)


#: Where the docs pages' scripts and styles are served from: the platform itself, never a CDN.
DOCS_ASSETS_URL = "/static/docs"


def _docs_assets_dir() -> str:
    """Swagger UI and ReDoc as shipped by the ``fastapi-offline`` package (its ``static`` folder)."""
    import fastapi_offline

    return str(Path(fastapi_offline.__file__).parent / "static")


def _add_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc``, readable as ``AGL_DOCS_ACCESS`` says (public,
    admin or off), with Swagger UI and ReDoc served by the platform so the pages work offline."""
    allowed = Depends(exposed("docs"))
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=_docs_assets_dir()), name="docs-assets")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_schema(_: None = allowed) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger(_: None = allowed) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(_: None = allowed) -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def _start_metrics_port(settings: Settings) -> Any:
    """Serve ``/metrics`` on ``AGL_METRICS_PORT`` (a private port for the scraper), if set."""
    if settings.agl_metrics_port is None:
        return None
    from prometheus_client import start_http_server

    from agentlightning.observability.metrics import multiprocess_dir, scrape_registry

    try:
        server, _thread = start_http_server(settings.agl_metrics_port, addr=settings.host, registry=scrape_registry())
    except OSError:
        if multiprocess_dir() is None:
            raise
        # Several processes share the metrics directory: the first one to bind the port serves
        # everyone's metrics (each scrape aggregates every process's files).
        return None
    return server


def add_routes_flat(app: FastAPI, routers: list[APIRouter]) -> None:
    """Serve every route of ``routers`` from the app's own router, as ``include_router`` would.

    FastAPI 0.165 keeps an included router as one lazy entry that, on every request, matches the
    path twice (once to select the router, once inside it) and swaps per-route context in and out
    of the scope: about a quarter of a small request's Python calls. Our routers set nothing at
    inclusion (the prefix and tags are their own; no dependencies, no response class, no body or
    form limits), so their route objects, appended as they are, behave exactly as included ones;
    this refuses a router for which that would no longer hold.
    """
    for router in routers:
        if router.dependencies or not isinstance(router.default_response_class, DefaultPlaceholder):
            raise ValueError(f"router {router.prefix!r}: include-time options need app.include_router")
        for route in router.routes:
            if isinstance(route, APIRoute) and route.response_model is None:
                # Without a model the app's default response class would apply when included.
                if isinstance(route.response_class, DefaultPlaceholder):
                    raise ValueError(f"{route.path}: a route without a response model must name its response class")
        app.router.routes.extend(router.routes)


def create_app(settings: Settings | None = None, *, start_background: bool | None = None) -> FastAPI:
    """Build the API for ``settings``; the lifespan opens the context and starts background services."""
    settings = settings or get_settings()
    run_services = settings.agl_run_services if start_background is None else start_background
    configure_limits(JsonLimits(max_bytes=settings.input_json_max_bytes, max_depth=settings.input_json_max_depth))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await AppContext.create(settings)
        app.state.ctx = ctx
        provider = getattr(app.state, "tracer_provider", None)
        if provider is not None:
            instrument_engine(ctx.db.engine.sync_engine, provider)
        generated = await ensure_admin(ctx)
        if generated:
            # Printed once, on the first start of an empty database.
            print(
                f"\n  Created the first admin user '{settings.agl_admin_username}' with password: {generated}\n"
                "  Store it now; it will not be shown again (set AGL_ADMIN_PASSWORD to choose it).\n",
                flush=True,
            )
        if run_services:
            await start_services(ctx)
        metrics_server = _start_metrics_port(settings)
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
            await close_gateway(ctx)  # writes the gateway's queued call records
            await stop_services(ctx)
            await ctx.close()
            mark_process_dead()
            if provider is not None:
                provider.shutdown()

    install_log_redaction()
    app = FastAPI(
        title="Agent Lightning",
        version=__version__,
        description="Serve LLM agents behind an HTTP API and improve them with reinforcement learning.",
        lifespan=lifespan,
        # orjson for bodies without a response model; routes with one keep FastAPI's Pydantic fast path.
        default_response_class=Default(FastJSONResponse),
        # The docs routes are ours (_add_docs): assets served locally, access decided by settings.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Traces come from api/tracing.py (OTel's FastAPI instrumentation) when asked for;
        # FastAPI's native telemetry would otherwise look for a provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    if settings.docs_access != "off":
        _add_docs(app)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for fault in UNAVAILABLE_TYPES:
        app.add_exception_handler(fault, _database_unavailable)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(GatewayMiddleware, max_body_bytes=settings.max_request_body_bytes)
    add_routes_flat(app, ROUTERS)
    install_fast_handlers(app)
    install_static_route_index(app.router)
    install_openapi(app)
    if tracing_requested(settings):
        setup_tracing(app, settings)
    return app
