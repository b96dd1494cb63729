"""The event bus: publish from any process, receive in every process (Redis pub/sub or in-process).

Events the WebSocket delivers (topics ``tasks`` and ``training``) are *stored first*: each is a
row of ``task_events`` with an increasing id, and is published only after that row committed
(task events are written by the queue in the same transaction as the task's state change: an
outbox).  Redis carries them fast; a per-process *tailer* reads the table for ids that Redis did
not bring (an outage, a reconnect, a publisher killed after its commit) and hands them to the
same subscribers, each id at most once per process.  A client that reconnects reads what it
missed with :meth:`EventBus.read_since`.

Each process keeps one Redis subscription and fans events out to its local subscribers (for
example WebSocket connections). Events published at about the same time by one process (the
outcomes of tasks stored together, say) travel as one message per channel, a JSON array, so each
receiving process reads and parses one message for them all.  An event is ``{"id", "topic",
"event", "data", "timestamp", "owner"}``; ``id`` is None for the notification-only topics (``knowledge``, ``system``) and
``owner`` is the ``created_by`` of the task it is about (for per-user visibility).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from agentlightning.storage.batching import Coalescer, Pending, settle
from agentlightning.storage.models import TaskEvent
from agentlightning.storage.redis_batching import send_commands
from agentlightning.storage.types import json_text, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from agentlightning.storage.db import Database

log = logging.getLogger(__name__)

Event = dict[str, Any]
#: Topics whose events are stored with ids (the ones WebSocket clients subscribe to).
STORED_TOPICS = frozenset({"tasks", "training", "workflows"})
#: How often the tailer looks for stored events that no notification brought.
TAIL_INTERVAL_S = 0.5
#: A missing id younger than this is probably a transaction still committing: not looked up yet.
GAP_SETTLE_S = 0.3
#: A missing id older than this belonged to a rolled-back transaction: stop looking for it.
GAP_TIMEOUT_S = 60.0
TAIL_BATCH = 500


def jsonable(data: dict[str, Any] | None) -> dict[str, Any]:
    """``data`` as plain JSON types (timestamps as ISO strings), as it is stored and sent."""
    return orjson.loads(json_text(data or {}, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _timestamp(value: datetime | None = None) -> str:
    value = value or datetime.now(timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def stored_event(
    event_id: int | None,
    topic: str,
    event: str,
    data: dict[str, Any],
    *,
    owner: str | None = None,
    created_at: datetime | None = None,
) -> Event:
    """The wire shape of an event (stored ones carry their row id)."""
    return {
        "id": event_id,
        "topic": topic,
        "event": event,
        "data": data,
        "timestamp": _timestamp(created_at),
        "owner": owner,
    }


def _row_event(row: TaskEvent) -> Event:
    return stored_event(row.id, row.topic, row.event, row.data, owner=row.owner, created_at=row.created_at)


async def record_event(
    session: AsyncSession,
    topic: str,
    event: str,
    data: dict[str, Any],
    *,
    task_id: int | None = None,
    agent_id: int | None = None,
    owner: str | None = None,
) -> Event:
    """Insert an event row in ``session``'s transaction (the outbox); publish it after the commit."""
    now = utcnow()
    payload = jsonable(data)
    event_id = (
        await session.execute(
            insert(TaskEvent)
            .values(
                topic=topic, event=event, task_id=task_id, agent_id=agent_id, owner=owner, data=payload, created_at=now
            )
            .returning(TaskEvent.id)
        )
    ).scalar_one()
    return stored_event(int(event_id), topic, event, payload, owner=owner, created_at=now)


class _Cursor:
    """Which stored ids this process has handed out: everything up to ``high`` except ``gaps``."""

    def __init__(self, high: int) -> None:
        #: Ids up to here were stored before tailing began: the tailer never reads them, so they
        #: come only from notifications and are never duplicates.
        self.floor = high
        self.high = high
        self.gaps: dict[int, float] = {}

    def take(self, event_id: int) -> bool:
        """Record ``event_id``; False when it was already handed out."""
        if event_id <= self.floor:
            return True
        if event_id > self.high:
            now = time.monotonic()
            if event_id - self.high <= 10_000:
                for missing in range(self.high + 1, event_id):
                    self.gaps[missing] = now
            self.high = event_id
            return True
        return self.gaps.pop(event_id, None) is not None

    def settled_gaps(self) -> list[int]:
        """Missing ids worth looking up now; forgets those that waited too long."""
        now = time.monotonic()
        for gid in [g for g, t in self.gaps.items() if now - t > GAP_TIMEOUT_S]:
            del self.gaps[gid]
        return sorted(g for g, t in self.gaps.items() if now - t >= GAP_SETTLE_S)[:TAIL_BATCH]


class Subscription:
    """A local queue of events; iterate it with ``async for``."""

    def __init__(self, max_queue: int = 10_000, *, durable: bool = False) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max_queue)
        self.dropped = 0
        #: A durable subscriber also gets stored events that no notification brought (the tailer).
        self.durable = durable

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
    """In-process pub/sub with the stored event log; the base of the Redis-backed bus."""

    backend = "memory"

    def __init__(self, prefix: str = "agl") -> None:
        self.prefix = prefix
        self._subscribers: set[Subscription] = set()
        self.db: Database | None = None
        self._cursor: _Cursor | None = None
        self._tailer: asyncio.Task[None] | None = None
        self._tail_now = asyncio.Event()

    def attach_store(self, db: Database) -> None:
        """Store events of :data:`STORED_TOPICS` in ``db`` and recover the ones Redis missed."""
        self.db = db

    @staticmethod
    def make_event(topic: str, event: str, data: dict[str, Any] | None) -> Event:
        """The wire shape of an unstored event."""
        return stored_event(None, topic, event, data or {})

    async def start(self) -> None:
        """Begin receiving (a no-op in process)."""

    async def close(self) -> None:
        """Stop receiving."""
        await self._stop_tailer()

    @property
    def healthy(self) -> bool:
        """False while the transport is down."""
        return True

    async def publish(
        self,
        topic: str,
        event: str,
        data: dict[str, Any] | None = None,
        *,
        owner: str | None = None,
        task_id: int | None = None,
        agent_id: int | None = None,
    ) -> Event:
        """Send ``event`` on ``topic`` to every subscriber in every process (stored first when its
        topic is one of :data:`STORED_TOPICS`); returns the event as sent."""
        message: Event | None = None
        if self.db is not None and topic in STORED_TOPICS:
            payload = data or {}
            try:
                async with self.db.session() as s:
                    message = await record_event(
                        s,
                        topic,
                        event,
                        payload,
                        owner=owner,
                        task_id=task_id,
                        agent_id=agent_id if agent_id is not None else _int_or_none(payload.get("agent_id")),
                    )
                    await s.commit()
            except (SQLAlchemyError, OSError) as exc:  # publishing never fails its caller
                log.warning("event %s/%s not stored (database unavailable: %s); published only", topic, event, exc)
        if message is None:
            message = self.make_event(topic, event, jsonable(data))
        await self.announce([message])
        return message

    async def announce(self, events: Iterable[Event]) -> None:
        """Publish events whose rows are already committed (see :func:`record_event`)."""
        for message in events:
            self._deliver(message)

    def _deliver(self, message: Event) -> None:
        event_id = message.get("id")
        if event_id is not None and self._cursor is not None and not self._cursor.take(int(event_id)):
            return  # this process already handed it out (the tailer was first)
        for sub in list(self._subscribers):
            sub._offer(message)

    async def read_since(
        self, last_id: int, *, topics: Iterable[str] = STORED_TOPICS, limit: int = TAIL_BATCH
    ) -> list[Event]:
        """Stored events with an id above ``last_id``, oldest first (a client catching up)."""
        if self.db is None:
            return []
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(TaskEvent)
                    .where(TaskEvent.id > last_id, TaskEvent.topic.in_(list(topics)))
                    .order_by(TaskEvent.id)
                    .limit(limit)
                )
            ).scalars()
            return [_row_event(r) for r in rows]

    async def last_id(self) -> int:
        """The newest stored event id (0 when none)."""
        if self.db is None:
            return 0
        async with self.db.session() as s:
            return int(await s.scalar(select(func.max(TaskEvent.id))) or 0)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, durable: bool = False) -> AsyncIterator[Subscription]:
        """Receive every event while the block runs.

        ``durable`` subscribers make this process tail the event log, so a stored event that no
        notification brought (Redis down, a publisher killed after its commit) still arrives.
        """
        sub = Subscription(durable=durable)
        if durable and self.db is not None and self.backend != "memory":
            await self._ensure_tailer()  # in one process every event is delivered in process
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    # --- the tailer -------------------------------------------------------------------------
    def wake_tailer(self) -> None:
        """Look at the event log now (after a reconnect, for instance)."""
        self._tail_now.set()

    async def _ensure_tailer(self) -> None:
        if self._tailer is None or self._tailer.done():
            if self._cursor is None:
                self._cursor = _Cursor(await self.last_id())
            self._tailer = asyncio.create_task(self._tail(), name="event-log-tailer")

    async def _stop_tailer(self) -> None:
        if self._tailer is not None:
            self._tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tailer
            self._tailer = None

    async def _tail(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._tail_now.wait(), timeout=TAIL_INTERVAL_S)
            self._tail_now.clear()
            if not any(sub.durable for sub in self._subscribers):
                continue
            try:
                await self._tail_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be restarting: try again next round
                log.warning("reading the event log failed: %s", exc)

    async def _tail_once(self) -> None:
        assert self.db is not None and self._cursor is not None
        cursor = self._cursor
        async with self.db.session() as s:
            found: list[TaskEvent] = []
            gaps = cursor.settled_gaps()
            if gaps:
                found += (await s.execute(select(TaskEvent).where(TaskEvent.id.in_(gaps)))).scalars().all()
            found += (
                (
                    await s.execute(
                        select(TaskEvent).where(TaskEvent.id > cursor.high).order_by(TaskEvent.id).limit(TAIL_BATCH)
                    )
                )
                .scalars()
                .all()
            )
        for row in sorted(found, key=lambda r: r.id):
            if row.topic in STORED_TOPICS:
                self._deliver(_row_event(row))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class RedisEventBus(EventBus):
    """Events over Redis pub/sub on channels ``{prefix}:events:{topic}``."""

    backend = "redis"

    def __init__(self, url: str, prefix: str = "agl") -> None:
        super().__init__(prefix)
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=1.0, health_check_interval=15
        )
        #: Events of concurrent callers go out together (one message per channel and round trip).
        self.publisher = EventPublisher(self.client, self.channel)
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
        await self._stop_tailer()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self.client.aclose()

    async def announce(self, events: Iterable[Event]) -> None:
        """Publish committed events (with other callers', in one round trip); when Redis is down
        the tailer delivers them."""
        messages = list(events)
        try:
            if len(messages) == 1:
                await self.publisher.submit(messages[0])
            elif messages:
                await self.publisher.submit_many(messages)
        except (RedisError, OSError) as exc:
            log.warning("%d event(s) not published (Redis unavailable: %s)", len(messages), exc)

    async def _listen(self) -> None:
        backoff = 0.2
        pattern = f"{self.prefix}:events:*"
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                if not self._healthy:
                    self.wake_tailer()  # catch up on what was published while we were away
                self._healthy = True
                self._connected.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    try:
                        received = orjson.loads(message["data"])
                        for event in received if isinstance(received, list) else (received,):
                            self._deliver(event)
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


class EventPublisher(Coalescer):
    """Publishes the events handed in while the previous publish was on its way: one message per
    channel (the event, or a JSON array of them in order), all channels in one pipeline."""

    def __init__(self, client: aioredis.Redis, channel: Callable[[str], str], max_batch: int = 256) -> None:
        super().__init__(max_batch)
        self.client = client
        self.channel = channel
        #: Messages published and events they carried (for tests and benchmarks).
        self.messages = 0
        self.events = 0

    async def _write(self, batch: list[Pending]) -> None:
        by_channel: dict[str, list[Event]] = {}
        for pending in batch:
            by_channel.setdefault(self.channel(pending.item["topic"]), []).append(pending.item)
        commands = [
            ("PUBLISH", channel, json_text(events[0] if len(events) == 1 else events, default=str))
            for channel, events in by_channel.items()
        ]
        try:
            await send_commands(self.client, commands)
        except Exception as error:  # noqa: BLE001 - each caller logs it (the tailer delivers later)
            for pending in batch:
                settle(pending, error=error)
            return
        self.messages += len(by_channel)
        self.events += len(batch)
        for pending in batch:
            settle(pending)


def create_event_bus(redis_url: str | None, prefix: str = "agl") -> EventBus:
    """Redis pub/sub when a URL is configured, otherwise in-process delivery."""
    return RedisEventBus(redis_url, prefix) if redis_url else EventBus(prefix)
