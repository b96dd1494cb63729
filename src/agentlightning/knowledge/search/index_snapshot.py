"""Saving the in-process vector index to disk and reloading it at start-up, safely.

Building the HNSW graph takes minutes at 100,000 vectors on two cores; reloading a saved one takes
about a second. A snapshot is one ``.npz`` file (written to a temporary name, fsynced, then renamed
over the old one, so a crash never leaves a half-written snapshot) holding the serialised usearch
index, the ``rev`` watermark it had applied, the revs it was still waiting for (gaps), the model,
dtype and dimension.

A snapshot is only a head start; the database stays the truth. On reload:

1. it is discarded unless format, model, dtype and dimension match, and unless the database's
   highest ``rev`` is at least the snapshot's watermark (a lower one means a restored or recreated
   database: its revs are a different history);
2. up to :data:`VERIFY_SAMPLE` stored vectors are compared with the snapshot's copies (a database
   swapped underneath would fail this);
3. it is reconciled with the current ``(item_id, rev)`` list of the embeddings table: vectors of
   items that no longer have one are removed, and every row written after the watermark (or in a
   gap, or missing from the snapshot) is fetched and applied. Deletion tombstones are not needed,
   so a snapshot older than their retention is still safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import DIMENSION, from_blob
from agentlightning.knowledge.search.usearch_backend import LOAD_BATCH, UsearchBackend

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Stored vectors compared with the snapshot's before it is trusted.
VERIFY_SAMPLE = 32
#: Smallest cosine between a stored vector and its snapshot copy (f16 storage loses ~1e-3).
VERIFY_MIN_COSINE = 0.99


@dataclass
class Snapshot:
    """A snapshot read from disk (not yet validated against the database)."""

    index_bytes: np.ndarray
    meta: dict[str, Any]
    gaps: list[int]


def snapshot_path(directory: str | Path, database_url: str) -> Path:
    """Where the snapshot of the index for ``database_url`` lives (one file per database)."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return Path(directory) / f"usearch-{digest}.npz"


def _write(path: Path, index_bytes: bytes | bytearray, meta: dict[str, Any], gaps: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        np.savez(
            handle,
            index=np.frombuffer(index_bytes, dtype=np.uint8),
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            gaps=np.asarray(gaps, dtype=np.int64),
        )
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, or None when there is none or it cannot be read."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            return Snapshot(index_bytes=data["index"], meta=meta, gaps=[int(g) for g in data["gaps"]])
    except Exception as exc:  # a corrupt or foreign file is ignored, never trusted
        log.warning("ignoring unreadable vector index snapshot %s: %s", path, exc)
        return None


async def save_snapshot(backend: UsearchBackend, path: Path) -> bool:
    """Write ``backend``'s built index to ``path``; False when there is no built index to save."""
    captured = await asyncio.to_thread(backend.snapshot_state)
    if captured is None:
        return False
    index_bytes, watermark, gaps, model = captured
    meta = {
        "format": FORMAT_VERSION,
        "model": model,
        "dtype": backend.dtype,
        "dimension": DIMENSION,
        "watermark": watermark,
        "saved_at": time.time(),
    }
    await asyncio.to_thread(_write, path, index_bytes, meta, gaps)
    return True


def _compatible(snapshot: Snapshot, backend: UsearchBackend, model: str) -> bool:
    meta = snapshot.meta
    return (
        meta.get("format") == FORMAT_VERSION
        and meta.get("model") == model
        and meta.get("dtype") == backend.dtype
        and meta.get("dimension") == DIMENSION
    )


async def _verified(session: AsyncSession, index: Any, ids: np.ndarray) -> bool:
    if not len(ids):
        return True
    sample = np.random.default_rng().choice(ids, size=min(VERIFY_SAMPLE, len(ids)), replace=False)
    rows = (
        await session.execute(
            text("SELECT item_id, embedding FROM knowledge_embeddings WHERE item_id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": [int(i) for i in sample]},
        )
    ).all()
    if not rows:
        return False
    stored = np.stack([from_blob(r[1]) for r in rows]).astype(np.float32)
    saved = np.asarray(index.get(np.array([int(r[0]) for r in rows], dtype=np.uint64)), dtype=np.float32)
    norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(saved, axis=1)
    return bool(np.all((stored * saved).sum(axis=1) / np.maximum(norms, 1e-12) >= VERIFY_MIN_COSINE))


async def restore_snapshot(session: AsyncSession, backend: UsearchBackend, path: Path, model: str) -> bool:
    """Install the snapshot at ``path`` into a cold ``backend``, reconciled with the database.

    Returns False (and leaves the backend cold, for a normal build) when there is no usable snapshot.
    """
    async with backend.lock():
        if backend.state != "cold":
            return False
        return await _restore(session, backend, path, model)


async def _restore(session: AsyncSession, backend: UsearchBackend, path: Path, model: str) -> bool:
    snapshot = await asyncio.to_thread(read_snapshot, path)
    if snapshot is None or not _compatible(snapshot, backend, model):
        return False
    watermark = int(snapshot.meta["watermark"])
    top = await backend.top_rev(session)
    if top < watermark:
        log.warning("vector index snapshot is ahead of the database (rev %d > %d): rebuilding", watermark, top)
        return False
    from usearch.index import Index

    index = await asyncio.to_thread(Index.restore, bytearray(snapshot.index_bytes.tobytes()))
    if index is None:
        return False
    listing = (
        await session.execute(
            text("SELECT item_id, rev FROM knowledge_embeddings WHERE model = :model"), {"model": model}
        )
    ).all()
    db_ids = np.fromiter((int(r[0]) for r in listing), dtype=np.uint64, count=len(listing))
    db_revs = np.fromiter((int(r[1]) for r in listing), dtype=np.int64, count=len(listing))
    indexed = np.asarray(index.keys, dtype=np.uint64)
    settled = (db_revs <= watermark) & ~np.isin(db_revs, np.asarray(snapshot.gaps, dtype=np.int64))
    settled &= np.isin(db_ids, indexed)
    if not await _verified(session, index, db_ids[settled]):
        log.warning("vector index snapshot does not match the stored vectors: rebuilding")
        return False
    stale = indexed[~np.isin(indexed, db_ids)]
    changes: dict[int, np.ndarray | None] = {int(i): None for i in stale}
    fetch = [int(i) for i in db_ids[~settled]]
    statement = text(
        "SELECT item_id, embedding FROM knowledge_embeddings WHERE item_id IN :ids AND model = :model"
    ).bindparams(bindparam("ids", expanding=True))
    for start in range(0, len(fetch), LOAD_BATCH):
        for item_id, blob in await session.execute(
            statement, {"ids": fetch[start : start + LOAD_BATCH], "model": model}
        ):
            changes[int(item_id)] = from_blob(blob)
    gaps = np.asarray(snapshot.gaps, dtype=np.int64)
    seen = {int(r) for r in db_revs[(db_revs > watermark) | np.isin(db_revs, gaps)]}
    await backend.install(
        index, model=model, watermark=watermark, gaps=snapshot.gaps, changes=changes, seen=seen, top=top
    )
    log.info(
        "vector index restored from %s: %d vectors, %d removed, %d fetched", path, len(index), len(stale), len(fetch)
    )
    return True
