"""The cache: one interface, a Redis backend and an in-process backend.

A Redis outage never fails a request: each call is bypassed (reads miss, writes are dropped), the
failure is logged once, and Redis is retried after a short pause so the cache recovers by itself.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentlightning.observability import metrics
from agentlightning.storage.redis_batching import CommandBatcher

log = logging.getLogger(__name__)


#: ``cache_lookups_total`` children by (namespace, hit): the labels are resolved once, not per lookup.
_LOOKUP_CHILDREN: dict[tuple[str, bool], Any] = {}


def _count_lookup(namespace: str, hit: bool) -> None:
    child = _LOOKUP_CHILDREN.get((namespace, hit))
    if child is None:
        child = metrics.CACHE_LOOKUPS.labels(namespace=namespace, result="hit" if hit else "miss")
        _LOOKUP_CHILDREN[(namespace, hit)] = child
    child.inc()


class Cache(ABC):
    """Key/value store with per-key TTLs and hit-rate accounting."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    backend: str = "abstract"

    @property
    def healthy(self) -> bool:
        """False while the backing store is unreachable (calls are being bypassed)."""
        return True

    @abstractmethod
    async def _get(self, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (forever when None)."""

    @abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove ``keys`` (missing keys are ignored)."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; returns how many were removed."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """True when ``key`` is present."""

    @abstractmethod
    async def incr(self, key: str, ttl: int | None = None) -> int:
        """Increment an integer counter, creating it (with ``ttl``) when absent."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the backing store does not answer."""

    async def close(self) -> None:
        """Release connections."""

    async def get(self, key: str, *, stat: str | None = None) -> str | None:
        """The value under ``key``; with ``stat``, count a hit or miss in that namespace."""
        value = await self._get(key)
        if stat is not None:
            hit = value is not None
            (self.hits if hit else self.misses)[stat] += 1
            _count_lookup(stat, hit)
        return value

    async def get_json(self, key: str, *, stat: str | None = None) -> Any:
        """The JSON value under ``key`` decoded, or None."""
        raw = await self.get(key, stat=stat)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def set_json(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store ``value`` as JSON."""
        await self.set(key, json.dumps(value, default=str, separators=(",", ":")), ttl)

    def decode_json(self, raw: str | bytes | None, *, stat: str | None = None) -> Any:
        """A raw value fetched elsewhere (a pipeline) decoded as :meth:`get_json` would, counted."""
        if stat is not None:
            hit = raw is not None
            (self.hits if hit else self.misses)[stat] += 1
            _count_lookup(stat, hit)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def add_json(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store ``value`` as JSON only when ``key`` is absent (a reader filling the cache never
        overwrites what a writer stored meanwhile)."""
        await self.set_json(key, value, ttl)

    def hit_rate(self, namespace: str | None = None) -> float | None:
        """Hits / lookups over counted lookups (one namespace or all); None before any lookup."""
        if namespace is None:
            hits, misses = sum(self.hits.values()), sum(self.misses.values())
        else:
            hits, misses = self.hits[namespace], self.misses[namespace]
        total = hits + misses
        return hits / total if total else None


class MemoryCache(Cache):
    """In-process cache for the embedded single-process deployment."""

    backend = "memory"

    def __init__(self, max_items: int = 100_000) -> None:
        super().__init__()
        self._data: dict[str, tuple[str, float | None]] = {}
        self._max_items = max_items

    def _live(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    async def _get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        if len(self._data) >= self._max_items and key not in self._data:
            self._evict()
        self._data[key] = (value, time.monotonic() + ttl if ttl else None)

    def _evict(self) -> None:
        now = time.monotonic()
        expired = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in expired:
            del self._data[k]
        while len(self._data) >= self._max_items:  # oldest insertion first
            del self._data[next(iter(self._data))]

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def add_json(self, key: str, value: Any, ttl: int | None = None) -> None:
        if self._live(key) is None:
            await self.set_json(key, value, ttl)

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self._data if k.startswith(prefix)]
        for k in doomed:
            del self._data[k]
        return len(doomed)

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def incr(self, key: str, ttl: int | None = None) -> int:
        current = self._live(key)
        value = int(current or 0) + 1
        expires = self._data[key][1] if current is not None else (time.monotonic() + ttl if ttl else None)
        self._data[key] = (str(value), expires)
        return value

    async def ping(self) -> None:
        return None

    def keys(self, pattern: str = "*") -> list[str]:
        """Live keys matching a glob pattern (for inspection and tests)."""
        return [k for k in list(self._data) if fnmatch.fnmatchcase(k, pattern) and self._live(k) is not None]


class ScopedWriteTimeoutConnection(aioredis.Connection):
    """redis-py's TCP connection, its write timeout applied as an ``asyncio.timeout`` scope.

    redis-py bounds each write with ``asyncio.wait_for``, which on Python 3.11 runs the write in a
    new Task and costs the event loop an extra pass on every command (from 3.12 on ``wait_for``
    is itself such a scope). The bound is the same: ``socket_timeout`` seconds, after which the
    connection is dropped and ``redis.exceptions.TimeoutError`` raised, as redis-py does.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout:
            await super().send_packed_command(command, check_health)
            return
        self.socket_timeout = None  # redis-py then writes directly; the scope below is the bound
        try:
            async with asyncio.timeout(timeout):  # only used on Python 3.11 (see _connection_options)
                await super().send_packed_command(command, check_health)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout


def _connection_options(url: str) -> dict[str, Any]:
    """The client's connection class: :class:`ScopedWriteTimeoutConnection` for plain TCP on
    Python 3.11, redis-py's own otherwise (TLS and unix sockets pick theirs from the URL)."""
    if (3, 11) <= sys.version_info < (3, 12) and url.startswith("redis://"):
        return {"connection_class": ScopedWriteTimeoutConnection}
    return {}


class RedisCache(Cache):
    """Redis-backed cache shared by every API and worker process."""

    backend = "redis"

    #: After a failure, Redis is left alone for this long so requests don't wait on timeouts.
    RETRY_AFTER_SECONDS = 2.0

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            health_check_interval=15,
            retry_on_timeout=False,
            **_connection_options(url),
        )
        #: Commands of concurrent callers go out together (one pipeline per round trip).
        self.commands = CommandBatcher(self.client)
        self._down_until = 0.0
        self._failures = 0

    @property
    def healthy(self) -> bool:
        return self._down_until <= time.monotonic()

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: BaseException) -> None:
        if self._failures == 0:
            log.warning("Redis unavailable during %s (%s); bypassing the cache until it returns", op, exc)
        self._failures += 1
        self._down_until = time.monotonic() + self.RETRY_AFTER_SECONDS
        metrics.CACHE_BYPASSES.inc()

    def mark_failed(self, op: str, exc: BaseException) -> None:
        """Record a failed call made outside this class (a pipeline sharing the client)."""
        self._failed(op, exc)

    def _recovered(self) -> None:
        if self._failures:
            log.warning("Redis is back after %d bypassed calls", self._failures)
            self._failures = 0

    async def _call(self, op: str, coro_factory: Any, default: Any) -> Any:
        if not self._available():
            metrics.CACHE_BYPASSES.inc()
            return default
        try:
            result = await coro_factory()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(op, exc)
            return default
        self._recovered()
        metrics.REDIS_OPERATIONS.labels(operation=op).inc()
        return result

    async def _get(self, key: str) -> str | None:
        return await self._call("get", lambda: self.commands.execute("GET", key), None)

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        expiry = ("EX", ttl) if ttl else ()
        await self._call("set", lambda: self.commands.execute("SET", key, value, *expiry), None)

    async def add_json(self, key: str, value: Any, ttl: int | None = None) -> None:
        raw = json.dumps(value, default=str, separators=(",", ":"))
        expiry = ("EX", ttl) if ttl else ()
        await self._call("set", lambda: self.commands.execute("SET", key, raw, *expiry, "NX"), None)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call("delete", lambda: self.commands.execute("DEL", *keys), None)

    async def delete_prefix(self, prefix: str) -> int:
        async def _scan_delete() -> int:
            removed = 0
            batch: list[str] = []
            async for key in self.client.scan_iter(match=f"{prefix}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    removed += await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self.client.unlink(*batch)
            return removed

        return int(await self._call("delete_prefix", _scan_delete, 0))

    async def exists(self, key: str) -> bool:
        return bool(await self._call("exists", lambda: self.commands.execute("EXISTS", key), 0))

    async def incr(self, key: str, ttl: int | None = None) -> int:
        async def _incr() -> int:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                if ttl:
                    pipe.expire(key, ttl, nx=True)
                result = await pipe.execute()
            return int(result[0])

        return int(await self._call("incr", _incr, 0))

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed("ping", exc)
            raise
        self._down_until = 0.0
        self._recovered()

    async def info(self) -> dict[str, Any]:
        """Redis ``INFO`` (clients and memory sections), empty when unreachable."""

        async def _info() -> dict[str, Any]:
            data: dict[str, Any] = {}
            data.update(await self.client.info("clients"))
            data.update(await self.client.info("memory"))
            return data

        return dict(await self._call("info", _info, {}))

    async def close(self) -> None:
        await self.client.aclose()


def create_cache(redis_url: str | None) -> Cache:
    """Redis when a URL is configured, otherwise the in-process cache."""
    return RedisCache(redis_url) if redis_url else MemoryCache()
