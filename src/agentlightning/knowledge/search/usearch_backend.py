"""The in-process vector index for databases without a vector type (usearch HNSW over stored bytes).

Each process keeps its own index of ``knowledge_embeddings`` and catches up before a search:

* **Catch-up** reads every change above the highest ``rev`` it has applied (its *watermark*):
  upserted vectors from ``knowledge_embeddings`` and deletions from
  ``knowledge_embedding_tombstones`` (a trigger logs every deleted embedding with a ``rev`` from the
  same counter), in ``rev`` order, so updates and deletions made by *other* processes leave this
  index too. A ``rev`` below the watermark that was not yet visible (a transaction that took its
  number earlier but committed later) is re-checked for :data:`GAP_RETRY_SECONDS`.
* **Cold start**: the first sync streams the stored vectors into memory (seconds at 100k) and
  builds the HNSW graph in a daemon thread (tens of seconds at 100k on two cores). Until the graph
  is ready, searches are answered *exactly* by a brute-force scan over the loaded vectors (a
  ``(n, 384)`` float32 matrix: about 20 ms for 100k), with changes that arrive meanwhile applied on
  top; the graph takes over, with those changes replayed, once built. The knowledge index service
  starts this at server start-up, so users rarely wait even for the load.
* Deletion tombstones are pruned after :data:`TOMBSTONE_RETENTION_SECONDS`; a process that has not
  synced for half that long rebuilds instead of trusting its watermark.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import DIMENSION, from_blob
from agentlightning.knowledge.search.vectors import VectorBackend
from agentlightning.storage.db import affected_rows

log = logging.getLogger(__name__)

#: How long a missing ``rev`` is re-checked before it is taken for a rolled-back write.
GAP_RETRY_SECONDS = 600.0
#: At most this many of the newest missing revs are tracked as possibly in flight.
MAX_TRACKED_GAPS = 100_000
#: Rows fetched per round trip when loading or catching up.
LOAD_BATCH = 5000
#: Deletion tombstones older than this are pruned (see ``prune_tombstones``).
TOMBSTONE_RETENTION_SECONDS = 7 * 24 * 3600.0

_TOP_SQL = (
    "SELECT max(r) FROM (SELECT max(rev) AS r FROM knowledge_embeddings "
    "UNION ALL SELECT max(rev) FROM knowledge_embedding_tombstones) AS revs"
)


def _changes_sql(with_gaps: bool) -> Any:
    where = "(rev > :watermark OR rev IN :gaps)" if with_gaps else "rev > :watermark"
    statement = text(
        "SELECT item_id, CASE WHEN model = :model THEN embedding END AS embedding, rev FROM knowledge_embeddings "
        f"WHERE {where} AND rev <= :top "
        f"UNION ALL SELECT item_id, NULL, rev FROM knowledge_embedding_tombstones WHERE {where} AND rev <= :top "
        "ORDER BY rev"
    )
    return statement.bindparams(bindparam("gaps", expanding=True)) if with_gaps else statement


async def prune_tombstones(session: AsyncSession, older_than_seconds: float = TOMBSTONE_RETENTION_SECONDS) -> int:
    """Delete tombstones older than the retention, always keeping the newest (the caller commits)."""
    from datetime import timedelta

    from agentlightning.storage.types import utcnow

    result = await session.execute(
        text(
            "DELETE FROM knowledge_embedding_tombstones WHERE deleted_at < :cutoff "
            "AND rev < (SELECT max(rev) FROM knowledge_embedding_tombstones)"
        ),
        {"cutoff": utcnow() - timedelta(seconds=older_than_seconds)},
    )
    return affected_rows(result)


@dataclass
class ExactVectors:
    """The loaded vectors, searched by brute force while the HNSW graph is being built.

    ``changes`` holds what catch-up found after the load (``None`` = removed); it overrides the
    matrix and is replayed into the graph when the graph is ready.
    """

    keys: np.ndarray
    matrix: np.ndarray
    changes: dict[int, np.ndarray | None] = field(default_factory=dict)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` most similar vectors (cosine of unit vectors = dot product)."""
        query = np.asarray(vector, dtype=np.float32)
        scores = self.matrix @ query if len(self.keys) else np.zeros(0, dtype=np.float32)
        if self.changes and len(self.keys):
            scores[np.isin(self.keys, np.fromiter(self.changes, dtype=np.uint64))] = -np.inf
        keys = self.keys
        added = [(key, v) for key, v in self.changes.items() if v is not None]
        if added:
            keys = np.concatenate([keys, np.array([key for key, _ in added], dtype=np.uint64)])
            scores = np.concatenate([scores, np.stack([v for _, v in added]).astype(np.float32) @ query])
        k = min(k, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(keys[i]), float(scores[i])) for i in top]


class UsearchBackend(VectorBackend):
    """Vectors as bytes in the database, searched through an in-process usearch HNSW index."""

    name = "usearch"

    def __init__(self, dialect: str, *, dtype: str = "f16", expansion_search: int = 128) -> None:
        super().__init__(dialect)
        self._dtype = dtype
        self._expansion_search = expansion_search
        self._index: Any = None
        self._exact: ExactVectors | None = None
        self._build: concurrent.futures.Future[Any] | None = None
        self._model: str | None = None
        self._watermark = 0
        self._last_sync = 0.0
        #: rev -> monotonic time it was first found missing.
        self._gaps: dict[int, float] = {}
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._thread_lock = threading.Lock()
        self.last_sync_seconds = 0.0
        self.build_seconds: float | None = None

    # --- state -------------------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        """How the graph stores vectors (``f16`` by default)."""
        return self._dtype

    def lock(self) -> asyncio.Lock:
        """The lock that serialises syncs (and snapshot restores) on the running event loop."""
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    @property
    def state(self) -> str:
        """``cold`` (nothing loaded), ``building`` (exact answers) or ``ready`` (HNSW)."""
        if self._index is not None:
            return "ready"
        return "building" if self._exact is not None else "cold"

    def _reset(self, model: str | None) -> None:
        self._index, self._exact, self._build, self._model = None, None, None, model
        self._watermark, self._gaps = 0, {}

    def _new_index(self) -> Any:
        from usearch.index import Index

        return Index(ndim=DIMENSION, metric="cos", dtype=self._dtype, expansion_search=self._expansion_search)

    def _build_graph(self, keys: np.ndarray, matrix: np.ndarray) -> Any:
        started = time.perf_counter()
        index = self._new_index()
        if len(keys):
            index.add(keys, matrix, threads=0)
        self.build_seconds = time.perf_counter() - started
        log.info("usearch index: built %d vectors in %.1fs", len(keys), self.build_seconds)
        return index

    def _start_build(self, exact: ExactVectors) -> None:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(self._build_graph(exact.keys, exact.matrix))
            except BaseException as exc:  # reported to whoever syncs next
                future.set_exception(exc)

        # A daemon thread: a short-lived process (a CLI search) must not wait for the build to exit.
        threading.Thread(target=run, name="usearch-build", daemon=True).start()
        self._build = future

    def _apply(self, index: Any, changes: dict[int, np.ndarray | None]) -> None:
        with self._thread_lock:
            touched = [key for key in changes if index.contains(key)]
            if touched:
                index.remove(touched)
            added = [(key, v) for key, v in changes.items() if v is not None]
            if added:
                index.add(np.array([k for k, _ in added], dtype=np.uint64), np.stack([v for _, v in added]), threads=0)

    def _adopt_finished_build(self) -> None:
        if self._build is None or not self._build.done():
            return
        build, exact = self._build, self._exact
        self._build = None
        try:
            index = build.result()
        except Exception:
            log.exception("usearch index build failed; exact search continues and the build is retried")
            if exact is not None:
                self._start_build(exact)
            return
        if exact is not None and exact.changes:
            self._apply(index, exact.changes)
        self._index, self._exact = index, None

    # --- sync --------------------------------------------------------------------------------
    async def top_rev(self, session: AsyncSession) -> int:
        """The highest ``rev`` issued so far (embeddings and deletion tombstones)."""
        return int((await session.execute(text(_TOP_SQL))).scalar() or 0)

    def _track_gaps(self, seen: set[int], top: int) -> None:
        now = time.monotonic()
        low = max(self._watermark + 1, top - MAX_TRACKED_GAPS + 1)
        fresh = set(range(low, top + 1)) - seen
        gaps = {rev: t for rev, t in self._gaps.items() if rev not in seen and now - t < GAP_RETRY_SECONDS}
        gaps.update({rev: now for rev in fresh})
        self._gaps = gaps
        self._watermark = max(self._watermark, top)

    async def _load(self, session: AsyncSession, model: str) -> int:
        """Stream every current vector into an :class:`ExactVectors` and start the graph build."""
        top = await self.top_rev(session)
        keys: list[np.ndarray] = []
        blocks: list[np.ndarray] = []
        seen: set[int] = set()
        stream = await session.stream(
            text("SELECT item_id, embedding, rev FROM knowledge_embeddings WHERE rev <= :top AND model = :model"),
            {"top": top, "model": model},
        )
        async for partition in stream.partitions(LOAD_BATCH):
            keys.append(np.fromiter((int(r[0]) for r in partition), dtype=np.uint64, count=len(partition)))
            blocks.append(np.stack([from_blob(r[1]) for r in partition]).astype(np.float32))
            seen.update(int(r[2]) for r in partition)
        exact = ExactVectors(
            keys=np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64),
            matrix=np.concatenate(blocks) if blocks else np.zeros((0, DIMENSION), dtype=np.float32),
        )
        self._exact = exact
        self._track_gaps(seen, top)
        self._start_build(exact)
        return len(exact.keys)

    async def _catch_up(self, session: AsyncSession, model: str) -> int:
        top = await self.top_rev(session)
        if top <= self._watermark and not self._gaps:
            return 0
        gaps = sorted(self._gaps)
        params: dict[str, Any] = {"watermark": self._watermark, "model": model, "top": top}
        if gaps:
            params["gaps"] = gaps
        applied = 0
        seen: set[int] = set()
        stream = await session.stream(_changes_sql(bool(gaps)), params)
        async for partition in stream.partitions(LOAD_BATCH):
            changes: dict[int, np.ndarray | None] = {}
            for item_id, blob, rev in partition:  # in rev order: the last change of an item wins
                changes[int(item_id)] = None if blob is None else from_blob(blob)
                seen.add(int(rev))
            if self._index is not None:
                await asyncio.to_thread(self._apply, self._index, changes)
            elif self._exact is not None:
                with self._thread_lock:  # an exact search may be reading the changes in a thread
                    self._exact.changes.update(changes)
            applied += len(partition)
        self._track_gaps(seen, top)
        return applied

    async def sync(self, session: AsyncSession, model: str) -> int:
        """Bring the in-process index up to date with the database; returns rows applied."""
        async with self.lock():
            started = time.perf_counter()
            stale = self._last_sync and time.monotonic() - self._last_sync > TOMBSTONE_RETENTION_SECONDS / 2
            if self._model != model or stale:
                self._reset(model)
            self._adopt_finished_build()
            if self.state == "cold":
                applied = await self._load(session, model)
            else:
                applied = await self._catch_up(session, model)
            self._last_sync = time.monotonic()
            self.last_sync_seconds = time.perf_counter() - started
            if applied:
                log.info("usearch index: applied %d changes in %.2fs (%s)", applied, self.last_sync_seconds, self.state)
            return applied

    def snapshot_state(self) -> tuple[bytearray, int, list[int], str] | None:
        """The built graph serialised, with its watermark, gaps and model; None while not built.

        Blocking (serialising copies the graph): call it in a worker thread.
        """
        with self._thread_lock:
            if self._index is None or self._model is None:
                return None
            return self._index.save(), self._watermark, sorted(self._gaps), self._model

    async def install(
        self,
        index: Any,
        *,
        model: str,
        watermark: int,
        gaps: Sequence[int],
        changes: dict[int, np.ndarray | None],
        seen: set[int],
        top: int,
    ) -> None:
        """Adopt a graph restored from a snapshot, with the changes that reconcile it (hold :meth:`lock`)."""
        self._reset(model)
        index.expansion_search = self._expansion_search
        if changes:
            await asyncio.to_thread(self._apply, index, changes)
        now = time.monotonic()
        self._index, self._watermark = index, watermark
        self._gaps = {int(g): now for g in gaps if int(g) not in seen}
        self._track_gaps(seen, top)
        self._last_sync = now

    async def wait_ready(self) -> None:
        """Wait until the HNSW graph is built and adopted (call :meth:`sync` first)."""
        while (build := self._build) is not None:
            with contextlib.suppress(Exception):  # a failed build is logged and retried on adoption
                await asyncio.wrap_future(build)
            async with self.lock():
                self._adopt_finished_build()

    # --- search ------------------------------------------------------------------------------
    def forget(self, item_ids: Sequence[int]) -> None:
        with self._thread_lock:
            if self._index is not None:
                present = [int(i) for i in item_ids if self._index.contains(int(i))]
                if present:
                    self._index.remove(present)
            elif self._exact is not None:
                self._exact.changes.update({int(i): None for i in item_ids})

    def _search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._thread_lock:
            index = self._index
            if index is None:
                return self._exact.search(vector, k) if self._exact is not None else []
            if len(index) == 0:
                return []
            matches = index.search(np.asarray(vector, dtype=np.float32), min(k, len(index)))
        return [(int(key), 1.0 - float(dist)) for key, dist in zip(matches.keys, matches.distances)]

    async def search(self, session: AsyncSession, vector: np.ndarray, k: int, model: str) -> list[tuple[int, float]]:
        await self.sync(session, model)
        return await asyncio.to_thread(self._search, vector, k)

    async def health(self) -> dict[str, Any]:
        size = len(self._index) if self._index is not None else (len(self._exact.keys) if self._exact else 0)
        return {
            "backend": self.name,
            "state": self.state,
            "indexed": size,
            "watermark": self._watermark,
            "pending_gaps": len(self._gaps),
            "build_seconds": self.build_seconds,
        }
