"""Background services started with the server (task workers, the RL experiment manager, ...)."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

log = logging.getLogger(__name__)


@runtime_checkable
class BackgroundService(Protocol):
    """A long-running part of the server with a start, a stop and a health report."""

    name: str

    async def start(self, ctx: AppContext) -> None:
        """Begin work; return once running."""

    async def stop(self) -> None:
        """Finish or hand back in-flight work, then return."""

    async def health(self) -> dict[str, Any]:
        """A small JSON-able report; must include ``"status"``."""


#: Import paths (``module:factory``) of the services ``serve`` runs; each factory takes the
#: settings and returns a service, or None when the service is disabled by configuration.
SERVICE_FACTORIES: list[str] = [
    "agentlightning.agents.pool:create_worker_pool",
    "agentlightning.rl.manager:create_manager",
    "agentlightning.knowledge.index_service:create_index_service",
    "agentlightning.rl.auto.monitor:create_monitor",
    "agentlightning.rl.optimisers.bandit_service:create_bandit_listener",
    "agentlightning.workflows.engine:create_engine_service",
]


def load_services(ctx: AppContext) -> list[BackgroundService]:
    """Instantiate every configured background service."""
    services: list[BackgroundService] = []
    for path in SERVICE_FACTORIES:
        module_name, _, attr = path.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        service = factory(ctx.settings)
        if service is not None:
            services.append(service)
    return services


async def start_services(ctx: AppContext) -> None:
    """Start the configured services in order, recording them on the context."""
    for service in load_services(ctx):
        await service.start(ctx)
        ctx.services[service.name] = service
        log.info("started %s", service.name)


async def stop_services(ctx: AppContext) -> None:
    """Stop the running services in reverse order."""
    for name in reversed(list(ctx.services)):
        try:
            await ctx.services[name].stop()
        except Exception:  # one service failing to stop must not keep the others running
            log.exception("stopping %s failed", name)
    ctx.services.clear()
