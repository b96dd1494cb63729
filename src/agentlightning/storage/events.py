"""The event bus: publish from any process, receive in every process (Redis pub/sub or in-process).

Each process keeps one Redis subscription and fans events out to its local subscribers (for
example WebSocket connections). Events are notifications; durable state lives in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Event = dict[str, Any]


class Subscription:
    """A local queue of events; iterate it with ``async for``."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max_queue)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()

    async def get(self, timeout: float | None = None) -> Event:
        """The next event (``asyncio.TimeoutError`` after ``timeout`` seconds)."""
        return await asyncio.wait_for(self.queue.get(), timeout)


class EventBus:
    """In-process pub/sub; the base of the Redis-backed bus."""

    backend = "memory"

    def __init__(self, prefix: str = "agl") -> None:
        self.prefix = prefix
        self._subscribers: set[Subscription] = set()

    @staticmethod
    def make_event(topic: str, event: str, data: dict[str, Any] | None) -> Event:
        """The wire shape of an event."""
        return {
            "topic": topic,
            "event": event,
            "data": data or {},
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        }

    async def start(self) -> None:
        """Begin receiving (a no-op in process)."""

    async def close(self) -> None:
        """Stop receiving."""

    @property
    def healthy(self) -> bool:
        """False while the transport is down."""
        return True

    async def publish(self, topic: str, event: str, data: dict[str, Any] | None = None) -> None:
        """Send ``event`` on ``topic`` to every subscriber in every process."""
        self._deliver(self.make_event(topic, event, data))

    def _deliver(self, message: Event) -> None:
        for sub in list(self._subscribers):
            sub._offer(message)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Receive every event while the block runs."""
        sub = Subscription()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)


class RedisEventBus(EventBus):
    """Events over Redis pub/sub on channels ``{prefix}:events:{topic}``."""

    backend = "redis"

    def __init__(self, url: str, prefix: str = "agl") -> None:
        super().__init__(prefix)
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=1.0, health_check_interval=15
        )
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._healthy = False

    @property
    def healthy(self) -> bool:
        return self._healthy

    def channel(self, topic: str) -> str:
        """The Redis channel for ``topic``."""
        return f"{self.prefix}:events:{topic}"

    async def start(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="event-bus-listener")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._connected.wait(), timeout=3.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self.client.aclose()

    async def publish(self, topic: str, event: str, data: dict[str, Any] | None = None) -> None:
        message = self.make_event(topic, event, data)
        try:
            await self.client.publish(self.channel(topic), json.dumps(message, default=str))
        except (RedisError, OSError) as exc:
            log.warning("event %s/%s not published (Redis unavailable: %s)", topic, event, exc)

    async def _listen(self) -> None:
        backoff = 0.2
        pattern = f"{self.prefix}:events:*"
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._healthy = True
                self._connected.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    try:
                        self._deliver(json.loads(message["data"]))
                    except ValueError:
                        log.warning("ignored malformed event on %s", message.get("channel"))
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                if self._healthy:
                    log.warning("event bus lost Redis (%s); reconnecting", exc)
                self._healthy = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def create_event_bus(redis_url: str | None, prefix: str = "agl") -> EventBus:
    """Redis pub/sub when a URL is configured, otherwise in-process delivery."""
    return RedisEventBus(redis_url, prefix) if redis_url else EventBus(prefix)
