"""Vector storage and nearest-neighbour search, one interface over three backends.

Every backend stores one row per item in ``knowledge_embeddings`` (written in the caller's
transaction, so an item and its vector commit together) and answers "the ``k`` items nearest to
this vector" with cosine similarity:

``pgvector``
    PostgreSQL with the ``vector`` extension: the column is ``vector(384)`` with an HNSW index and
    the database does the search.
``usearch``
    Any database without a vector type (this project's Debian PostgreSQL, or SQLite whose driver
    cannot load extensions): vectors are float32 bytes and each process keeps an in-memory HNSW
    index (usearch). Before a search the index catches up with rows whose ``rev`` is above the
    highest it has seen, plus any lower ``rev`` that was missing last time (a transaction that
    took its number earlier but committed later). Deleted items may linger in other processes'
    indexes; searches join with ``knowledge_items``, so they are never returned.
``sqlite-vec``
    SQLite whose driver can load extensions: a ``vec0`` virtual table mirrors the embeddings and
    SQLite does an exact search.

:func:`get_backend` picks one per database and remembers it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import DIMENSION, from_blob, to_blob
from agentlightning.storage.types import utcnow

log = logging.getLogger(__name__)

#: How long a missing ``rev`` is re-checked before it is taken for a rolled-back write.
GAP_RETRY_SECONDS = 600.0
#: Rows fetched per round trip when (re)building an in-process index.
LOAD_BATCH = 5000


class VectorBackend(ABC):
    """Stores embeddings and finds the nearest items to a query vector."""

    name: str = "abstract"

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def _rev_sql(self) -> str:
        if self.dialect == "postgresql":
            return "nextval('knowledge_embedding_rev_seq')"
        # SQLite has one writer at a time, so max + 1 inside the write is dense and ordered.
        return "(SELECT coalesce(max(rev), 0) + 1 FROM knowledge_embeddings)"

    def _embedding_sql(self) -> str:
        return ":embedding"

    def _embedding_param(self, vector: np.ndarray) -> Any:
        return to_blob(vector)

    async def upsert(self, session: AsyncSession, rows: Sequence[tuple[int, np.ndarray]], model: str) -> None:
        """Store (or replace) the vectors of ``rows`` (item id, vector) in the session's transaction."""
        if not rows:
            return
        statement = text(
            "INSERT INTO knowledge_embeddings (item_id, model, embedding, rev, updated_at) "
            f"VALUES (:item_id, :model, {self._embedding_sql()}, {self._rev_sql()}, :now) "
            "ON CONFLICT (item_id) DO UPDATE SET model = excluded.model, embedding = excluded.embedding, "
            "rev = excluded.rev, updated_at = excluded.updated_at"
        )
        now = utcnow()
        await session.execute(
            statement,
            [
                {"item_id": item_id, "model": model, "embedding": self._embedding_param(vector), "now": now}
                for item_id, vector in rows
            ],
        )

    async def delete(self, session: AsyncSession, item_ids: Sequence[int]) -> None:
        """Drop the vectors of ``item_ids`` (the foreign key also cascades on item deletion)."""
        if item_ids:
            await session.execute(
                text("DELETE FROM knowledge_embeddings WHERE item_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": list(item_ids)},
            )

    def forget(self, item_ids: Sequence[int]) -> None:
        """Called after a committed deletion (in-process indexes drop the ids at once)."""

    @abstractmethod
    async def search(self, session: AsyncSession, vector: np.ndarray, k: int, model: str) -> list[tuple[int, float]]:
        """The ``k`` nearest items as ``(item_id, cosine similarity)``, nearest first."""

    async def health(self) -> dict[str, Any]:
        """What the backend is and how large its in-process state is."""
        return {"backend": self.name}


class PgVectorBackend(VectorBackend):
    """PostgreSQL + pgvector: the database stores and searches (HNSW, cosine distance)."""

    name = "pgvector"

    def _embedding_sql(self) -> str:
        return "CAST(CAST(:embedding AS text) AS vector)"

    def _embedding_param(self, vector: np.ndarray) -> Any:
        return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"

    async def search(self, session: AsyncSession, vector: np.ndarray, k: int, model: str) -> list[tuple[int, float]]:
        query = self._embedding_param(vector)
        result = await session.execute(
            text(
                "SELECT item_id, 1 - (embedding <=> CAST(CAST(:q AS text) AS vector)) AS similarity "
                "FROM knowledge_embeddings WHERE model = :model "
                "ORDER BY embedding <=> CAST(CAST(:q AS text) AS vector) LIMIT :k"
            ),
            {"q": query, "model": model, "k": k},
        )
        return [(int(r[0]), float(r[1])) for r in result]


class UsearchBackend(VectorBackend):
    """Vectors as bytes in the database, searched through an in-process usearch HNSW index."""

    name = "usearch"

    def __init__(self, dialect: str, *, dtype: str = "f16", expansion_search: int = 128) -> None:
        super().__init__(dialect)
        self._dtype = dtype
        self._expansion_search = expansion_search
        self._index: Any = None
        self._model: str | None = None
        self._watermark = 0
        #: rev -> monotonic time it was first found missing.
        self._gaps: dict[int, float] = {}
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._thread_lock = threading.Lock()
        self.last_sync_seconds = 0.0

    def _new_index(self) -> Any:
        from usearch.index import Index

        return Index(ndim=DIMENSION, metric="cos", dtype=self._dtype, expansion_search=self._expansion_search)

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._thread_lock:
            present = [int(i) for i in ids if self._index.contains(int(i))]
            if present:
                self._index.remove(present)
            self._index.add(ids, vectors, threads=0)

    async def sync(self, session: AsyncSession, model: str) -> int:
        """Bring the in-process index up to date with the table; returns rows applied."""
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            started = time.perf_counter()
            if self._index is None or self._model != model:
                self._index, self._model, self._watermark, self._gaps = self._new_index(), model, 0, {}
            top = (await session.execute(text("SELECT max(rev) FROM knowledge_embeddings"))).scalar()
            top = int(top or 0)
            if top <= self._watermark and not self._gaps:
                return 0
            gaps = sorted(self._gaps)
            where = "rev > :watermark"
            params: dict[str, Any] = {"watermark": self._watermark, "model": model, "top": top}
            if gaps:
                where = "(rev > :watermark OR rev IN :gaps)"
                params["gaps"] = gaps
            statement = text(
                "SELECT item_id, embedding, rev FROM knowledge_embeddings "
                f"WHERE {where} AND rev <= :top AND model = :model ORDER BY rev"
            )
            if gaps:
                statement = statement.bindparams(bindparam("gaps", expanding=True))
            applied = 0
            seen: set[int] = set()
            stream = await session.stream(statement, params)
            async for partition in stream.partitions(LOAD_BATCH):
                ids = np.fromiter((int(r[0]) for r in partition), dtype=np.uint64, count=len(partition))
                vectors = np.stack([from_blob(r[1]) for r in partition])
                seen.update(int(r[2]) for r in partition)
                await asyncio.to_thread(self._add, ids, vectors)
                applied += len(partition)
            now = time.monotonic()
            # Revs between the old watermark and top that were not visible may still commit.
            fresh = set(range(self._watermark + 1, top + 1)) - seen if top - self._watermark <= 100_000 else set()
            gaps_left = {rev: t for rev, t in self._gaps.items() if rev not in seen and now - t < GAP_RETRY_SECONDS}
            gaps_left.update({rev: now for rev in fresh})
            self._gaps = gaps_left
            self._watermark = max(self._watermark, top)
            self.last_sync_seconds = time.perf_counter() - started
            if applied:
                log.info("usearch index: applied %d vectors in %.2fs (size %d)", applied, self.last_sync_seconds, len(self._index))
            return applied

    def forget(self, item_ids: Sequence[int]) -> None:
        if self._index is None:
            return
        with self._thread_lock:
            present = [int(i) for i in item_ids if self._index.contains(int(i))]
            if present:
                self._index.remove(present)

    def _search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._thread_lock:
            if len(self._index) == 0:
                return []
            matches = self._index.search(np.asarray(vector, dtype=np.float32), min(k, len(self._index)))
        return [(int(key), 1.0 - float(dist)) for key, dist in zip(matches.keys, matches.distances)]

    async def search(self, session: AsyncSession, vector: np.ndarray, k: int, model: str) -> list[tuple[int, float]]:
        await self.sync(session, model)
        return await asyncio.to_thread(self._search, vector, k)

    async def health(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "indexed": 0 if self._index is None else len(self._index),
            "watermark": self._watermark,
            "pending_gaps": len(self._gaps),
        }


def sqlite_can_load_extensions() -> bool:
    """True when Python's ``sqlite3`` was built with loadable-extension support."""
    return hasattr(sqlite3.Connection, "enable_load_extension")


class SqliteVecBackend(VectorBackend):
    """SQLite + sqlite-vec: a ``vec0`` table (rowid = item id) mirrors the embeddings."""

    name = "sqlite-vec"
    TABLE_DDL = (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_vec USING vec0(embedding float[{DIMENSION}] distance_metric=cosine)"
    )

    async def _prepare(self, session: AsyncSession) -> None:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        if not raw.info.get("sqlite_vec"):
            import sqlite_vec

            driver = raw.driver_connection  # the aiosqlite connection
            await driver.enable_load_extension(True)
            await driver.load_extension(sqlite_vec.loadable_path())
            await driver.enable_load_extension(False)
            raw.info["sqlite_vec"] = True
        await session.execute(text(self.TABLE_DDL))

    async def upsert(self, session: AsyncSession, rows: Sequence[tuple[int, np.ndarray]], model: str) -> None:
        if not rows:
            return
        await super().upsert(session, rows, model)
        await self._prepare(session)
        ids = [item_id for item_id, _ in rows]
        await session.execute(
            text("DELETE FROM knowledge_vec WHERE rowid IN :ids").bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )
        await session.execute(
            text("INSERT INTO knowledge_vec (rowid, embedding) VALUES (:id, :embedding)"),
            [{"id": item_id, "embedding": to_blob(vector)} for item_id, vector in rows],
        )

    async def delete(self, session: AsyncSession, item_ids: Sequence[int]) -> None:
        await super().delete(session, item_ids)
        if item_ids:
            await self._prepare(session)
            await session.execute(
                text("DELETE FROM knowledge_vec WHERE rowid IN :ids").bindparams(bindparam("ids", expanding=True)),
                {"ids": list(item_ids)},
            )

    async def search(self, session: AsyncSession, vector: np.ndarray, k: int, model: str) -> list[tuple[int, float]]:
        await self._prepare(session)
        result = await session.execute(
            text(
                "SELECT rowid, distance FROM knowledge_vec WHERE embedding MATCH :q AND k = :k ORDER BY distance"
            ),
            {"q": to_blob(vector), "k": k},
        )
        return [(int(r[0]), 1.0 - float(r[1])) for r in result]


_backends: dict[str, VectorBackend] = {}


async def _detect(session: AsyncSession) -> VectorBackend:
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        column_type = (
            await session.execute(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'knowledge_embeddings'::regclass AND attname = 'embedding'"
                )
            )
        ).scalar()
        if column_type and str(column_type).startswith("vector"):
            return PgVectorBackend(dialect)
        return UsearchBackend(dialect)
    if sqlite_can_load_extensions():
        return SqliteVecBackend(dialect)
    return UsearchBackend(dialect)


async def get_backend(session: AsyncSession) -> VectorBackend:
    """The vector backend for the session's database (detected once per database URL)."""
    key = session.bind.url.render_as_string(hide_password=True)
    backend = _backends.get(key)
    if backend is None:
        backend = _backends.setdefault(key, await _detect(session))
        log.info("knowledge vectors: %s backend for %s", backend.name, key)
    return backend


def reset_backends() -> None:
    """Forget every backend (tests that recreate databases under the same URL use this)."""
    _backends.clear()
