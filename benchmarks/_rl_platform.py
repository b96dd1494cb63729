"""Run RL experiments through the platform (experiment service + manager + backend), as the API does.

The benchmarks use an embedded SQLite database in a temporary directory unless ``DATABASE_URL``
is set, so they need no server.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agentlightning.core.context import AppContext
from agentlightning.rl.experiments import TERMINAL, ExperimentCreate, ExperimentService
from agentlightning.rl.manager import ExperimentManager
from agentlightning.settings import Settings
from agentlightning.storage.migrate import upgrade


@asynccontextmanager
async def platform(
    max_concurrent: int = 1, **overrides: Any
) -> AsyncIterator[tuple[ExperimentService, ExperimentManager]]:
    """A context, an experiment service and a running manager on a scratch database."""
    with tempfile.TemporaryDirectory(prefix="agl-rl-bench-") as scratch:
        url = os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{scratch}/bench.db"
        upgrade(url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            redis_url=os.environ.get("REDIS_URL"),
            rl_artifacts_dir=os.path.join(scratch, "rl"),
            rl_max_concurrent_sessions=max_concurrent,
            **overrides,
        )
        ctx = await AppContext.create(settings)
        manager = ExperimentManager(settings)
        await manager.start(ctx)
        ctx.services["rl"] = manager
        try:
            yield ExperimentService(ctx), manager
        finally:
            await manager.stop()
            await ctx.close()


async def run(
    service: ExperimentService, bodies: list[dict[str, Any]], timeout: float = 3600
) -> tuple[list[dict[str, Any]], float]:
    """Create the experiments, wait until all end; returns their final state and the wall time."""
    started = time.perf_counter()
    ids = [(await service.create(ExperimentCreate(**body), created_by="benchmark"))["id"] for body in bodies]
    while True:
        states = [await service.get(i) for i in ids]
        if all(s["status"] in TERMINAL for s in states):
            return states, time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError([(s["name"], s["status"]) for s in states])
        await asyncio.sleep(0.25)
