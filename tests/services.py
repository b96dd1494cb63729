"""The real PostgreSQL and Redis the suite runs against: discovery, a fresh database, a Redis slot.

A missing service is an error, never a skip: CI must fail loudly when PostgreSQL or Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

import asyncpg
import redis

PG_ADMIN_DSN = os.environ.get("AGL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("AGL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
_LOCK_TTL = 6 * 3600


class ServiceMissing(RuntimeError):
    """PostgreSQL or Redis is not reachable; start them (``.ci/run`` does)."""


def _pg_dsn_for(database: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


async def _pg_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_postgres_database(prefix: str = "agl_test") -> str:
    """Create an empty database; returns its async SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_execute(PG_ADMIN_DSN, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceMissing(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}") from exc
    return _pg_dsn_for(name).replace("postgresql://", "postgresql+asyncpg://", 1)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database`."""
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_execute(PG_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def postgres_database(prefix: str = "agl_test", revision: str | None = "head") -> Iterator[str]:
    """A database of its own for the block, migrated to ``revision`` (None: left empty), then dropped."""
    url = create_postgres_database(prefix)
    try:
        if revision is not None:
            from agentlightning.storage.migrate import upgrade

            upgrade(url, revision)
        yield url
    finally:
        drop_postgres_database(url)


class RedisSlot:
    """One of Redis's numbered databases, held exclusively by this test run."""

    def __init__(self) -> None:
        self.index: int | None = None
        self.owner = uuid.uuid4().hex
        self._admin = redis.Redis.from_url(f"{REDIS_BASE_URL}/0", socket_connect_timeout=2)

    def acquire(self) -> str:
        """Lock a free database index (1-15), flush it, and return its URL."""
        try:
            self._admin.ping()
        except redis.RedisError as exc:
            raise ServiceMissing(f"Redis is not reachable at {REDIS_BASE_URL}: {exc}") from exc
        for index in range(1, 16):
            if self._admin.set(f"agl:testlock:{index}", self.owner, nx=True, ex=_LOCK_TTL):
                self.index = index
                url = f"{REDIS_BASE_URL}/{index}"
                redis.Redis.from_url(url).flushdb()
                return url
        raise ServiceMissing("all Redis test databases 1-15 are held by other runs")

    def release(self) -> None:
        """Flush and unlock the held database."""
        if self.index is None:
            return
        redis.Redis.from_url(f"{REDIS_BASE_URL}/{self.index}").flushdb()
        if self._admin.get(f"agl:testlock:{self.index}") == self.owner.encode():
            self._admin.delete(f"agl:testlock:{self.index}")
        self.index = None
