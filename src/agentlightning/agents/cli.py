"""``agentlightning worker``: a task worker process (run any number, on any host sharing the database)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

import typer

log = logging.getLogger(__name__)


def worker(
    min_concurrency: int = typer.Option(None, "--min", help="Minimum tasks in flight (default AGENT_WORKERS_MIN)."),
    max_concurrency: int = typer.Option(None, "--max", help="Maximum tasks in flight (default AGENT_WORKERS_MAX)."),
    worker_id: str = typer.Option(None, help="Name of this worker in leases and logs (default host:pid:random)."),
    migrate: bool = typer.Option(False, "--migrate/--no-migrate", help="Upgrade the database schema first."),
    metrics_port: int = typer.Option(
        0, help="Serve this worker's Prometheus metrics (agent_requests_total, ...) on this port (0: off)."
    ),
) -> None:
    """Claim and run agent tasks until SIGTERM/SIGINT, then finish or hand back in-flight tasks."""
    from agentlightning.settings import get_settings

    settings = get_settings()
    if migrate:
        from agentlightning.storage.migrate import upgrade

        upgrade(settings.database_url)
    if metrics_port:
        from prometheus_client import start_http_server

        from agentlightning.observability.metrics import scrape_registry

        start_http_server(metrics_port, registry=scrape_registry())
    with asyncio.Runner(loop_factory=loop_factory(settings.agent_worker_loop)) as runner:
        runner.run(_run_worker(settings, min_concurrency, max_concurrency, worker_id))


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The worker's event loop: uvloop for "auto" when it is installed (its transports write to
    sockets from C, a large share of a worker's CPU per task), else asyncio's own."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _run_worker(
    settings, min_concurrency: int | None, max_concurrency: int | None, worker_id: str | None
) -> None:  # noqa: ANN001
    from agentlightning.agents.pool import WorkerPool
    from agentlightning.core.context import AppContext

    ctx = await AppContext.create(settings)
    pool = WorkerPool(settings, min_concurrency=min_concurrency, max_concurrency=max_concurrency, worker_id=worker_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await pool.start(ctx)
        print(f"worker {pool.worker_id} ready", flush=True)
        await stop.wait()
        log.info("worker %s shutting down", pool.worker_id)
    finally:
        await pool.stop()
        await ctx.close()
        log.info("worker %s stopped: %s", pool.worker_id, await pool.health())
