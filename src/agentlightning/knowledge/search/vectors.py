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
    index (usearch) that catches up with upserts and deletions by ``rev``
    (:mod:`agentlightning.knowledge.search.usearch_backend`).
``sqlite-vec``
    SQLite whose driver can load extensions (the stdlib ``sqlite3``, or ``pysqlite3`` where the
    stdlib one cannot; see :mod:`agentlightning.storage.sqlite_driver`): SQLite scans the
    embeddings exactly with ``vec_distance_cosine``.

:func:`get_backend` picks one per database and remembers it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import to_blob
from agentlightning.storage.sqlite_driver import can_load_extensions
from agentlightning.storage.types import utcnow

log = logging.getLogger(__name__)


class VectorBackend(ABC):
    """Stores embeddings and finds the nearest items to a query vector."""

    name: str = "abstract"

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def _rev_sql(self) -> str:
        if self.dialect == "postgresql":
            return "nextval('knowledge_embedding_rev_seq')"
        # SQLite has one writer at a time, so the highest rev issued (an embedding's or a deletion
        # tombstone's, see migration 0005) + 1 inside the write is ordered.
        return (
            "(SELECT max(coalesce((SELECT max(rev) FROM knowledge_embeddings), 0), "
            "coalesce((SELECT max(rev) FROM knowledge_embedding_tombstones), 0)) + 1)"
        )

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


def sqlite_can_load_extensions(session: AsyncSession) -> bool:
    """True when the session's SQLite driver can load extensions (pysqlite3 where the stdlib cannot)."""
    dbapi = session.get_bind().dialect.loaded_dbapi
    module = getattr(dbapi, "sqlite", None)
    return module is not None and can_load_extensions(module)


class SqliteVecBackend(VectorBackend):
    """SQLite + sqlite-vec: an exact cosine scan of ``knowledge_embeddings`` inside SQLite.

    ``vec_distance_cosine`` reads the float32 blobs of the embeddings table itself, so there is no
    second copy of the vectors that could drift from it (a process whose driver cannot load the
    extension still writes the same table, with the usearch backend).
    """

    name = "sqlite-vec"

    async def _prepare(self, session: AsyncSession) -> None:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        if not raw.info.get("sqlite_vec"):
            import sqlite_vec

            driver: Any = raw.driver_connection  # the aiosqlite connection
            await driver.enable_load_extension(True)
            await driver.load_extension(sqlite_vec.loadable_path())
            await driver.enable_load_extension(False)
            raw.info["sqlite_vec"] = True

    async def search(self, session: AsyncSession, vector: np.ndarray, k: int, model: str) -> list[tuple[int, float]]:
        await self._prepare(session)
        result = await session.execute(
            text(
                "SELECT item_id, vec_distance_cosine(embedding, :q) AS distance FROM knowledge_embeddings "
                "WHERE model = :model ORDER BY distance LIMIT :k"
            ),
            {"q": to_blob(vector), "model": model, "k": k},
        )
        return [(int(r[0]), 1.0 - float(r[1])) for r in result]


_backends: dict[str, VectorBackend] = {}


async def _detect(session: AsyncSession) -> VectorBackend:
    from agentlightning.knowledge.search.usearch_backend import UsearchBackend

    dialect = session.get_bind().dialect.name
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
    if sqlite_can_load_extensions(session):
        return SqliteVecBackend(dialect)
    log.warning("this SQLite driver cannot load sqlite-vec (install pysqlite3-binary): using the usearch index")
    return UsearchBackend(dialect)


async def get_backend(session: AsyncSession) -> VectorBackend:
    """The vector backend for the session's database (detected once per database URL)."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    backend = _backends.get(key)
    if backend is None:
        backend = _backends.setdefault(key, await _detect(session))
        log.info("knowledge vectors: %s backend for %s", backend.name, key)
    return backend


def reset_backends() -> None:
    """Forget every backend (tests that recreate databases under the same URL use this)."""
    _backends.clear()
