"""Bulk insertion of knowledge records: COPY on PostgreSQL, multi-row INSERT on SQLite.

Records whose ``content_hash`` is already stored (or repeated within the batch) are skipped, which
makes imports resumable: a batch either commits whole or not at all, and re-running an import
inserts only what is missing. On PostgreSQL the ids are drawn from the table's sequence first,
so the rows go in with ``COPY`` (asyncpg ``copy_records_to_table``) and their embeddings can be
written right after, in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import bindparam, insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import EmbeddingUnavailable, embedding_text, get_embedder
from agentlightning.knowledge.ingest.parsers import IngestRecord
from agentlightning.knowledge.search.vectors import get_backend
from agentlightning.storage.models.knowledge import KnowledgeItem
from agentlightning.storage.types import utcnow

HASH_LOOKUP_BATCH = 1000
EMBED_BATCH = 256
ITEM_COLUMNS = (
    "id",
    "title",
    "content",
    "category",
    "tags",
    "metadata",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "version",
    "content_hash",
    "source",
)


@dataclass
class InsertOutcome:
    """Ids created (in record order), records skipped as already stored, vectors written."""

    ids: list[int] = field(default_factory=list)
    skipped: int = 0
    embedded: int = 0


async def existing_hashes(session: AsyncSession, hashes: Sequence[str], *, source: str | None = None) -> set[str]:
    """Which of ``hashes`` are already stored (by items imported from ``source``, when given)."""
    found: set[str] = set()
    if session.get_bind().dialect.name == "postgresql":
        # During a large import the table grows faster than autovacuum refreshes its statistics, and
        # the planner, believing it tiny, scans it whole for every probe (quadratic imports). The
        # probe is always an index lookup, so say so for this transaction.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
    scope = " AND source = :source" if source is not None else ""
    statement = text(f"SELECT content_hash FROM knowledge_items WHERE content_hash IN :hashes{scope}").bindparams(
        bindparam("hashes", expanding=True)
    )
    for start in range(0, len(hashes), HASH_LOOKUP_BATCH):
        chunk = list(hashes[start : start + HASH_LOOKUP_BATCH])
        params: dict[str, object] = {"hashes": chunk}
        if source is not None:
            params["source"] = source
        found.update(r[0] for r in await session.execute(statement, params))
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL enable_seqscan = on"))
    return found


async def _asyncpg_connection(session: AsyncSession):  # noqa: ANN202 - asyncpg is an optional import
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def _copy_items(session: AsyncSession, records: Sequence[IngestRecord], created_by: str | None) -> list[int]:
    ids = [
        int(r[0])
        for r in await session.execute(
            text("SELECT nextval(pg_get_serial_sequence('knowledge_items', 'id')) FROM generate_series(1, :n)"),
            {"n": len(records)},
        )
    ]
    now = utcnow()
    rows = [
        (
            item_id,
            r.title,
            r.content,
            r.category,
            r.tags,
            json.dumps(r.metadata, ensure_ascii=False, default=str),
            now,
            now,
            created_by,
            created_by,
            1,
            r.content_hash,
            r.source,
        )
        for item_id, r in zip(ids, records)
    ]
    driver = await _asyncpg_connection(session)
    await driver.copy_records_to_table("knowledge_items", records=rows, columns=list(ITEM_COLUMNS))
    return ids


async def _insert_items(session: AsyncSession, records: Sequence[IngestRecord], created_by: str | None) -> list[int]:
    now = utcnow()
    result = await session.execute(
        insert(KnowledgeItem).returning(KnowledgeItem.id, sort_by_parameter_order=True),
        [
            {
                "title": r.title,
                "content": r.content,
                "category": r.category,
                "tags": r.tags,
                "meta": r.metadata,
                "created_at": now,
                "updated_at": now,
                "created_by": created_by,
                "updated_by": created_by,
                "version": 1,
                "content_hash": r.content_hash,
                "source": r.source,
            }
            for r in records
        ],
    )
    return [int(r[0]) for r in result]


async def store_vectors(
    session: AsyncSession, ids: Sequence[int], vectors: Sequence[np.ndarray] | np.ndarray, model: str
) -> None:
    """Write embeddings for freshly inserted items (COPY where the column is plain bytes on PostgreSQL)."""
    backend = await get_backend(session)
    if session.get_bind().dialect.name == "postgresql" and backend.name == "usearch":
        now = utcnow()
        driver = await _asyncpg_connection(session)
        await driver.copy_records_to_table(
            "knowledge_embeddings",
            records=[(i, model, np.asarray(v, dtype="<f4").tobytes(), now) for i, v in zip(ids, vectors)],
            columns=["item_id", "model", "embedding", "updated_at"],
        )
    else:
        await backend.upsert(session, list(zip(ids, vectors)), model)


async def insert_records(
    session: AsyncSession,
    records: Sequence[IngestRecord],
    *,
    created_by: str | None = None,
    skip_existing: bool = True,
    embed: bool = True,
    source: str | None = None,
) -> InsertOutcome:
    """Insert ``records`` in the session's transaction (the caller commits).

    With ``source`` (a file import), a record is skipped only when that file already stored the
    same content: a file owns its records, and replacing them must not touch another file's.
    """
    outcome = InsertOutcome()
    fresh: list[IngestRecord] = []
    if skip_existing:
        stored = await existing_hashes(session, sorted({r.content_hash for r in records}), source=source)
        seen: set[str] = set()
        for record in records:
            if record.content_hash in stored or record.content_hash in seen:
                outcome.skipped += 1
                continue
            seen.add(record.content_hash)
            fresh.append(record)
    else:
        fresh = list(records)
    if not fresh:
        return outcome
    if session.get_bind().dialect.name == "postgresql":
        outcome.ids = await _copy_items(session, fresh, created_by)
    else:
        outcome.ids = await _insert_items(session, fresh, created_by)
    if embed:
        embedder = get_embedder()
        for start in range(0, len(fresh), EMBED_BATCH):
            batch = fresh[start : start + EMBED_BATCH]
            try:
                vectors = await embedder.aencode([embedding_text(r.title, r.content) for r in batch])
            except EmbeddingUnavailable:
                break
            await store_vectors(session, outcome.ids[start : start + EMBED_BATCH], vectors, embedder.model_name)
            outcome.embedded += len(batch)
    return outcome
