"""The async database engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import CursorResult, Result, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from agentlightning.storage.faults import is_refused_statement
from agentlightning.storage.pool_ping import install_idle_ping
from agentlightning.storage.sqlite_driver import async_dbapi, extension_module
from agentlightning.storage.types import JSON_CODEC


def normalise_url(url: str) -> str:
    """Map plain ``postgresql://`` / ``sqlite://`` URLs onto the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (``None`` for PostgreSQL and in-memory databases)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return None if path in ("", ":memory:") else path


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file (the data directory on a fresh machine)."""
    path = sqlite_file(url)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """One engine plus a session factory; ``dialect`` tells SQL that differs per database."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 20,
        echo: bool = False,
        sqlite_extensions: bool = True,
    ) -> None:
        """``sqlite_extensions=False`` keeps the stdlib driver even where pysqlite3 could load sqlite-vec."""
        self.url = normalise_url(url)
        ensure_sqlite_folder(self.url)
        kwargs: dict[str, Any] = {"echo": echo, **JSON_CODEC}
        if self.url.startswith("postgresql"):
            # LIFO keeps hot connections in use; idle ones are pinged on checkout (install_idle_ping), so
            # connections a PostgreSQL restart has broken are replaced instead of failing a request.
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800, pool_use_lifo=True)
        else:
            # The same pool sizes: SQLAlchemy's default for SQLite (5, overflow 10) closed the
            # overflow connections as soon as they were returned, and each new one costs a thread,
            # the PRAGMAs and SQLite's schema parse (hundreds a minute under a modest load).
            kwargs.update(connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=max_overflow)
            module = extension_module() if sqlite_extensions else None
            if module is not None:
                # Extension-capable SQLite (sqlite-vec); see agentlightning.storage.sqlite_driver.
                kwargs["module"] = async_dbapi(module)
        #: True when this engine's SQLite connections can load extensions (always False on PostgreSQL).
        self.sqlite_extensions = self.url.startswith("sqlite") and "module" in kwargs
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _tune_sqlite)
        else:
            install_idle_ping(self.engine.sync_engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        #: SQLite's writers of this process take turns on this lock (see :meth:`write_session`),
        #: one per event loop (a lock belongs to the loop it first waited in).
        self._sqlite_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] | None = (
            weakref.WeakKeyDictionary() if self.dialect == "sqlite" else None
        )

    @property
    def dialect(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that rolls back if the block raises; commit explicitly."""
        async with self._sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A :meth:`session` for a transaction that writes, on the hot paths (the task queue).

        On SQLite, which lets one connection write at a time, these transactions take turns in
        this process in arrival order.  Left to SQLite, a writer that finds the file locked waits
        in its busy handler, which sleeps and polls rather than being woken: under load one assign
        in twenty waited over a second for a lock held a few milliseconds.  Other writers still
        meet SQLite's own lock.  On PostgreSQL this is :meth:`session`.
        """
        if self._sqlite_writers is None:
            async with self.session() as session:
                yield session
            return
        loop = asyncio.get_running_loop()
        writers = self._sqlite_writers.get(loop)
        if writers is None:
            writers = self._sqlite_writers[loop] = asyncio.Lock()
        async with writers, self.session() as session:
            yield session

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """A pooled connection's own driver connection (asyncpg), outside any transaction: each
        statement commits by itself.  For :class:`agentlightning.storage.driver.DriverStatement`.

        A connection left in an unknown state (a cancellation or a lost connection mid-statement)
        is discarded rather than handed to the next caller; one that only had a statement refused
        by the server is kept.
        """
        async with self.engine.connect() as conn:
            pooled = await conn.get_raw_connection()
            try:
                yield pooled.driver_connection
            except BaseException as error:
                if not is_refused_statement(error):
                    await conn.invalidate()
                raise

    async def ping(self) -> None:
        """Raise if the database does not answer ``SELECT 1``."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def pool_status(self) -> dict[str, int]:
        """Connections checked out and idle in the engine's pool."""
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        idle = getattr(pool, "checkedin", lambda: 0)()
        return {"checked_out": int(checked_out), "idle": int(idle)}

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def affected_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (SQLAlchemy types ``execute`` as a plain ``Result``)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
