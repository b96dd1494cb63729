"""The container of a process's shared resources: settings, database, cache and event bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentlightning.observability.system import instrument_engine
from agentlightning.settings import Settings
from agentlightning.storage.cache import Cache, create_cache
from agentlightning.storage.db import Database
from agentlightning.storage.events import EventBus, create_event_bus


@dataclass
class AppContext:
    """What every request handler, worker and background service needs to do its job."""

    settings: Settings
    db: Database
    cache: Cache
    events: EventBus
    started_at: float = field(default_factory=time.time)
    #: Background services started with this context, by name.
    services: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def create(cls, settings: Settings) -> AppContext:
        """Open the database, cache and event bus named by ``settings``."""
        db = Database(
            settings.database_url, pool_size=settings.database_pool_size, max_overflow=settings.database_max_overflow
        )
        instrument_engine(db.engine.sync_engine)
        cache = create_cache(settings.redis_url)
        events = create_event_bus(settings.redis_url, settings.agl_events_prefix)
        events.attach_store(db)  # task and training events are stored with ids before publishing
        await events.start()
        return cls(settings=settings, db=db, cache=cache, events=events)

    @property
    def uptime_seconds(self) -> float:
        """Seconds since this context was created."""
        return time.time() - self.started_at

    async def close(self) -> None:
        """Release every connection."""
        await self.events.close()
        await self.cache.close()
        await self.db.dispose()


T = TypeVar("T")


@asynccontextmanager
async def open_context(settings: Settings | None = None) -> AsyncIterator[AppContext]:
    """An :class:`AppContext` for the block (the process settings by default), closed afterwards."""
    from agentlightning.settings import get_settings

    ctx = await AppContext.create(settings or get_settings())
    try:
        yield ctx
    finally:
        await ctx.close()


def run_with_context(work: Callable[[AppContext], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run ``work(ctx)`` to completion from synchronous code such as a CLI command."""

    async def _main() -> T:
        async with open_context(settings) as ctx:
            return await work(ctx)

    return asyncio.run(_main())
