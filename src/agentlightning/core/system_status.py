"""What ``/health``, ``/system/status`` and ``/system/stats`` report."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select

from agentlightning import __version__
from agentlightning.core.context import AppContext
from agentlightning.observability.system import host_usage
from agentlightning.storage.models import Agent, KnowledgeItem, RLExperiment, Task, User
from agentlightning.vocabulary import COMPONENT_STATES

#: The one vocabulary of component states, and the roll-up's.
OK, STARTING, DEGRADED, DOWN = COMPONENT_STATES
HEALTHY, OVERALL_DEGRADED = "healthy", "degraded"
_SYNONYMS = {
    "up": OK,
    "running": OK,
    "idle": OK,
    "healthy": OK,
    "ready": OK,
    "warming": STARTING,
    "stopped": DOWN,
    "error": DOWN,
    "failed": DOWN,
}


def component_state(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with its ``status`` in the one vocabulary (``ok``, ``starting``, ``degraded``,
    ``down``); a service's own word, when different, is kept as ``state``."""
    raw = str(report.get("status", DEGRADED))
    state = raw if raw in COMPONENT_STATES else _SYNONYMS.get(raw, DEGRADED)
    return {**report, "status": state} if state == raw else {**report, "status": state, "state": raw}


def roll_up(parts: list[dict[str, Any]]) -> str:
    """``healthy`` when every component is ``ok`` (or still ``starting``), else ``degraded``."""
    return HEALTHY if all(p.get("status") in (OK, STARTING) for p in parts) else OVERALL_DEGRADED


async def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=2.0)
    except Exception as exc:  # any failure means "down"; the reason is reported
        return {"status": DOWN, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": OK, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def readiness(ctx: AppContext) -> dict[str, dict[str, Any]]:
    """Whether the database and (when configured) Redis answer right now."""
    checks = {"database": await _timed(ctx.db.ping)}
    if ctx.settings.redis_url:
        checks["redis"] = await _timed(ctx.cache.ping)
    return checks


async def components(ctx: AppContext) -> dict[str, Any]:
    """Every component with its state, plus version and environment."""
    ready = await readiness(ctx)
    database = {**ready["database"], "dialect": ctx.db.dialect, "pool": ctx.db.pool_status()}
    cache: dict[str, Any] = {"backend": ctx.cache.backend}
    cache.update(ready.get("redis", {"status": OK}))
    events = {"backend": ctx.events.backend, "status": OK if ctx.events.healthy else DOWN}
    services: dict[str, Any] = {}
    for name, service in ctx.services.items():
        try:
            services[name] = component_state(await asyncio.wait_for(service.health(), timeout=2.0))
        except Exception as exc:
            services[name] = {"status": DOWN, "error": str(exc)[:300]}
    overall = roll_up([database, cache, events, *services.values()])
    return {
        "status": overall,
        "version": __version__,
        "environment": ctx.settings.agl_env,
        "uptime_seconds": round(ctx.uptime_seconds, 1),
        "components": {"database": database, "cache": cache, "event_bus": events, **services},
        "resources": host_usage(),
    }


async def _grouped(session: Any, column: Any) -> dict[str, int]:
    rows = (await session.execute(select(column, func.count()).group_by(column))).all()
    return {str(key): int(count) for key, count in rows}


async def statistics(ctx: AppContext) -> dict[str, Any]:
    """Row counts, uptime and cache effectiveness."""
    async with ctx.db.session() as session:
        agents = await _grouped(session, Agent.status)
        tasks = await _grouped(session, Task.status)
        experiments = await _grouped(session, RLExperiment.status)
        knowledge = int(await session.scalar(select(func.count()).select_from(KnowledgeItem)) or 0)
        users = int(await session.scalar(select(func.count()).select_from(User)) or 0)
    cache = ctx.cache
    namespaces = sorted(set(cache.hits) | set(cache.misses))
    return {
        "uptime_seconds": round(ctx.uptime_seconds, 1),
        "users": users,
        "agents": {"total": sum(agents.values()), "by_status": agents},
        "tasks": {"total": sum(tasks.values()), "by_status": tasks},
        "knowledge_items": knowledge,
        "rl_experiments": {"total": sum(experiments.values()), "by_status": experiments},
        "cache": {
            "backend": cache.backend,
            "hit_rate": cache.hit_rate(),
            "by_namespace": {
                ns: {"hits": cache.hits[ns], "misses": cache.misses[ns], "hit_rate": cache.hit_rate(ns)}
                for ns in namespaces
            },
        },
    }
