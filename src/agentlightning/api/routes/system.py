"""System management: health, readiness, status, statistics, configuration and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from agentlightning.api.deps import Ctx, context_of, exposed, public, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ErrorEnvelope, error_body, ok
from agentlightning.auth.service import Principal
from agentlightning.core import system_status
from agentlightning.core.schemas import HealthStatus, SystemStats, SystemStatus
from agentlightning.core.system_config import SystemConfig, SystemConfigUpdate, get_config, update_config
from agentlightning.observability.metrics import exposition
from agentlightning.observability.system import refresh_gauges

router = APIRouter(tags=["system"], responses=ERROR_RESPONSES)

_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorEnvelope, "description": "A dependency is not ready (details.checks)"}
}


@router.get("/api/v2/health", response_model=Envelope[HealthStatus], responses=_NOT_READY)
async def health(
    request: Request,
    ready: bool = Query(default=False, description="Also check the database and Redis (readiness)"),
    _: None = Depends(public),
) -> Any:
    """Liveness; with ``?ready=1`` readiness (database and Redis answer), 503 when not ready."""
    ctx = context_of(request)  # not a ``Ctx`` dependency: the probe path pays for no extra solve
    if not ready:
        return ok({"status": "healthy", "uptime_seconds": round(ctx.uptime_seconds, 1)}, "Service is alive")
    checks = await system_status.readiness(ctx)
    if all(c["status"] == system_status.OK for c in checks.values()):
        return ok({"status": "ready", "checks": checks}, "Service is ready")
    body = error_body("SERVICE_UNAVAILABLE", "A dependency is not ready", {"checks": checks})
    return JSONResponse(body, status_code=503)


@router.get("/api/v2/health/ready", response_model=Envelope[HealthStatus], responses=_NOT_READY)
async def readiness(request: Request, _: None = Depends(public)) -> Any:
    """Readiness probe: the database and Redis (when configured) answer."""
    return await health(request, ready=True)


@router.get("/api/v2/system/status", response_model=Envelope[SystemStatus])
async def status(ctx: Ctx, _: Principal = Depends(require("system:read"))) -> dict[str, Any]:
    """Each component and its state."""
    return ok(await system_status.components(ctx))


@router.get("/api/v2/system/stats", response_model=Envelope[SystemStats])
async def stats(ctx: Ctx, _: Principal = Depends(require("system:read"))) -> dict[str, Any]:
    """Counts, uptime and cache hit rate."""
    return ok(await system_status.statistics(ctx))


@router.get("/api/v2/system/config", response_model=Envelope[SystemConfig])
async def read_config(ctx: Ctx, _: Principal = Depends(require("system:read"))) -> dict[str, Any]:
    """The runtime configuration."""
    return ok(await get_config(ctx, fresh=True))


@router.put("/api/v2/system/config", response_model=Envelope[SystemConfig])
async def write_config(
    body: SystemConfigUpdate, ctx: Ctx, principal: Principal = Depends(require("system:write"))
) -> dict[str, Any]:
    """Change the runtime configuration (admin only); validated, persisted and cached."""
    config = await update_config(ctx, body, principal.username)
    return ok(config, "System configuration updated")


@router.get("/metrics", include_in_schema=False, response_class=Response)
async def prometheus_metrics(ctx: Ctx, _: None = Depends(exposed("metrics"))) -> Response:
    """Prometheus text exposition of every platform metric (public, admin-only or off: a setting)."""
    await refresh_gauges(ctx)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
