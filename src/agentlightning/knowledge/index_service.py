"""Keeps this process's in-process vector index warm: built at start-up, caught up in the background.

Without it, the usearch index (used where the database has no vector type) is built by the first
semantic search after a start, which at 100,000 vectors means tens of seconds. The service starts
the build as soon as the server is up and then catches up every ``knowledge_index_sync_seconds``,
so request-time catch-ups stay small; searches that arrive during the build are answered exactly
(see :mod:`agentlightning.knowledge.search.usearch_backend`). With ``knowledge_index_dir`` set it
first tries the snapshot saved by the previous run (reconciled with the database, see
:mod:`agentlightning.knowledge.search.index_snapshot`) and saves a new one every
``knowledge_index_snapshot_seconds`` when the index changed, and at shutdown. It also prunes old
deletion tombstones. With pgvector or sqlite-vec there is nothing in-process to warm: it only prunes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from agentlightning.core.context import AppContext
from agentlightning.knowledge.embeddings import get_embedder
from agentlightning.knowledge.search.index_snapshot import restore_snapshot, save_snapshot, snapshot_path
from agentlightning.knowledge.search.usearch_backend import UsearchBackend, prune_tombstones
from agentlightning.knowledge.search.vectors import VectorBackend, get_backend
from agentlightning.observability import metrics
from agentlightning.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between tombstone prunes.
PRUNE_INTERVAL_SECONDS = 3600.0
#: Smaller indexes are not saved: rebuilding them takes well under a second.
SNAPSHOT_MIN_VECTORS = 1000


class KnowledgeIndexService:
    """The ``knowledge_index`` background service (see the module docstring)."""

    name = "knowledge_index"

    def __init__(self, settings: Settings) -> None:
        self.interval = settings.knowledge_index_sync_seconds
        self.snapshot_interval = settings.knowledge_index_snapshot_seconds
        self._snapshot_path = (
            snapshot_path(settings.knowledge_index_dir, settings.database_url) if settings.knowledge_index_dir else None
        )
        self.snapshot_min_vectors = SNAPSHOT_MIN_VECTORS
        self._saved_watermark: int | None = None
        self._last_save = 0.0
        #: ``snapshot`` when the index came from disk, ``build`` when it was built.
        self.warmed_from: str | None = None
        self._ctx: AppContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._backend: VectorBackend | None = None
        self._ready_after: float | None = None
        self._last_error: str | None = None
        self._last_prune = 0.0

    async def start(self, ctx: AppContext) -> None:
        """Start warming in the background; returns at once (the server does not wait for it)."""
        self._ctx = ctx
        self._task = asyncio.create_task(self._run(), name="knowledge-index")

    async def _step(self, ctx: AppContext, model: str) -> None:
        started = time.perf_counter()
        async with ctx.db.session() as session:
            backend = self._backend = await get_backend(session)
            if isinstance(backend, UsearchBackend):
                snapshot = self._snapshot_path if self.warmed_from is None else None
                if snapshot is not None and await restore_snapshot(session, backend, snapshot, model):
                    self.warmed_from = "snapshot"
                    self._saved_watermark = (await backend.health())["watermark"]
                await backend.sync(session, model)
            if time.monotonic() - self._last_prune > PRUNE_INTERVAL_SECONDS:
                pruned = await prune_tombstones(session)
                await session.commit()
                self._last_prune = time.monotonic()
                if pruned:
                    log.info("pruned %d vector deletion tombstones", pruned)
        if isinstance(backend, UsearchBackend):
            if self._ready_after is None:
                await backend.wait_ready()
                self._ready_after = time.perf_counter() - started
                self.warmed_from = self.warmed_from or "build"
                log.info("knowledge vector index warm after %.1fs (%s)", self._ready_after, self.warmed_from)
            if time.monotonic() - self._last_save > self.snapshot_interval:
                await self._save(backend)
            metrics.KNOWLEDGE_VECTOR_INDEX_SIZE.set((await backend.health())["indexed"])

    async def _save(self, backend: UsearchBackend) -> None:
        """Snapshot the index when it changed since the last snapshot (and is worth saving)."""
        if self._snapshot_path is None or backend.state != "ready":
            return
        health = await backend.health()
        if health["indexed"] < self.snapshot_min_vectors:
            return
        watermark = health["watermark"]
        if watermark != self._saved_watermark and await save_snapshot(backend, self._snapshot_path):
            self._saved_watermark = watermark
            log.info("knowledge vector index saved to %s (rev %d)", self._snapshot_path, watermark)
        self._last_save = time.monotonic()

    async def _run(self) -> None:
        assert self._ctx is not None
        model = get_embedder().model_name  # the name only: the model itself is not loaded
        while True:
            try:
                await self._step(self._ctx, model)
                self._last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly away; try again next round
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("knowledge index catch-up failed: %s", self._last_error)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop the background loop and snapshot the index (a build in progress is abandoned)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if isinstance(self._backend, UsearchBackend):
            try:
                await self._save(self._backend)
            except Exception:  # a failed snapshot only costs a rebuild at the next start
                log.exception("saving the knowledge vector index failed")

    async def health(self) -> dict[str, Any]:
        """``warming`` until the in-process index is built, then ``ok``; with the backend's report."""
        report: dict[str, Any] = {"status": "warming" if self._backend is None else "ok"}
        if self._backend is not None:
            report.update(await self._backend.health())
            if isinstance(self._backend, UsearchBackend) and self._backend.state != "ready":
                report["status"] = "warming"
        if self._ready_after is not None:
            report["warm_seconds"] = round(self._ready_after, 3)
            report["warmed_from"] = self.warmed_from
        if self._last_error:
            report["status"] = "degraded"
            report["error"] = self._last_error
        return report


def create_index_service(settings: Settings) -> KnowledgeIndexService | None:
    """``SERVICE_FACTORIES`` entry: the index warmer, unless ``knowledge_index_warmup`` is off."""
    return KnowledgeIndexService(settings) if settings.knowledge_index_warmup else None
