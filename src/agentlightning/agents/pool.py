"""The agent pool: a worker that claims tasks from the queue and runs them concurrently.

One :class:`WorkerPool` runs inside ``serve`` (unless ``AGENT_WORKERS_IN_API=false``) and one in
each ``agentlightning worker`` process; any number of them on any hosts share the database.

* **Scaling.** Concurrency (tasks in flight) follows queue depth between ``min_concurrency`` and
  ``max_concurrency``, re-evaluated every few seconds and whenever work arrives.
* **Wake-ups.** ``task_created`` events wake an idle worker at once; polling is the fallback.
* **Leases.** A heartbeat extends the leases of in-flight tasks; a task the worker no longer
  holds (cancelled, or reaped after a stall) is stopped locally.  On PostgreSQL the heartbeat
  runs in its own thread, with its own event loop and database connection
  (:class:`LeaseKeeper`), so a saturated event loop or a busy connection pool never delays a
  renewal.  Every worker also reaps expired leases, so a task whose worker died is claimed again.
* **Shutdown.** ``stop()`` stops claiming, lets in-flight tasks finish for the grace period,
  then cancels the rest and hands them back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from agentlightning.agents.executor import TaskExecutor
from agentlightning.agents.llm import resolve_upstream
from agentlightning.agents.scheduler import ClaimedTask, TaskScheduler, renew_leases
from agentlightning.agents.service import AgentService
from agentlightning.agents.tools.registry import load_tool_modules
from agentlightning.observability.metrics import REDIS_CACHE_HIT_RATE
from agentlightning.settings import Settings
from agentlightning.storage.db import Database

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

log = logging.getLogger(__name__)

#: A worker's most tasks at once when ``AGENT_WORKERS_MAX`` is unset: the embedded local model
#: answers one request at a time, while with an LLM upstream a task mostly waits on the model (with
#: an instant scripted upstream one worker did about 400 tasks/s with 16 and 520-540 with 64).
LOCAL_MODEL_MAX_CONCURRENCY = 8
UPSTREAM_MAX_CONCURRENCY = 64
SCALE_INTERVAL_S = 2.0
REAP_INTERVAL_S = 2.0
MAX_CLAIM_BATCH = 16
#: Events after which a slot may be free again (an agent at its concurrency limit).
FREES_A_SLOT = frozenset({"task_completed", "task_failed", "task_cancelled"})


class LeaseKeeper:
    """Renews a worker's leases from a thread of its own (own event loop, own connection).

    The worker's event loop can be saturated (many tasks, a CPU-starved machine) and its pool
    busy with claims; neither delays a renewal here.  Lost leases (a cancelled task, or one
    reaped and claimed again elsewhere) are reported to ``on_lost`` on the worker's loop as
    ``(task_id, lease_token)`` pairs.
    """

    def __init__(self, settings: Settings, interval: float) -> None:
        self.settings = settings
        self.interval = interval
        self.lease = settings.agent_task_lease_seconds
        self._tokens: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.renewals = 0

    def track(self, task_id: int, token: str) -> None:
        """Keep renewing ``task_id``'s lease."""
        with self._lock:
            self._tokens[task_id] = token

    def untrack(self, task_id: int, token: str) -> None:
        """Stop renewing (the task finished or was handed back)."""
        with self._lock:
            if self._tokens.get(task_id) == token:
                del self._tokens[task_id]

    def start(self, loop: asyncio.AbstractEventLoop, on_lost: Any) -> None:
        """Start the thread; ``on_lost`` is called on ``loop`` with the leases lost."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(loop, on_lost)), name="lease-keeper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    async def _main(self, loop: asyncio.AbstractEventLoop, on_lost: Any) -> None:
        from datetime import timedelta

        db = Database(self.settings.database_url, pool_size=1, max_overflow=1)
        try:
            while not await asyncio.to_thread(self._stop.wait, self.interval):
                with self._lock:
                    tokens = dict(self._tokens)
                if not tokens:
                    continue
                try:
                    lost = await renew_leases(db, timedelta(seconds=self.lease), tokens)
                    self.renewals += 1
                    self.last_error = None
                except Exception as exc:  # noqa: BLE001 - the database may be restarting: try next round
                    self.last_error = f"heartbeat: {exc}"
                    log.warning("renewing leases failed: %s", exc)
                    continue
                if lost:
                    with contextlib.suppress(RuntimeError):  # the worker's loop is closing
                        loop.call_soon_threadsafe(on_lost, [(tid, tokens[tid]) for tid in lost])
        finally:
            await db.dispose()


def default_max_concurrency(settings: Settings) -> int:
    """``AGENT_WORKERS_MAX``, or when unset the default for the default upstream of the agents."""
    if settings.agent_workers_max is not None:
        return settings.agent_workers_max
    remote = resolve_upstream({}, settings).kind == "openai"
    return UPSTREAM_MAX_CONCURRENCY if remote else LOCAL_MODEL_MAX_CONCURRENCY


def make_worker_id() -> str:
    """``host:pid:random`` — unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WorkerPool:
    """Claims and executes tasks; a :class:`~agentlightning.core.services.BackgroundService`."""

    name = "agent_workers"

    def __init__(
        self,
        settings: Settings,
        *,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.min_concurrency = settings.agent_workers_min if min_concurrency is None else min_concurrency
        self.max_concurrency = max(
            1, default_max_concurrency(settings) if max_concurrency is None else max_concurrency, self.min_concurrency
        )
        self.worker_id = worker_id or make_worker_id()
        self.target = max(1, self.min_concurrency)
        self.ctx: AppContext | None = None
        self.scheduler: TaskScheduler | None = None
        self.executor: TaskExecutor | None = None
        self.in_flight: dict[int, tuple[ClaimedTask, asyncio.Task[Any]]] = {}
        self.keeper: LeaseKeeper | None = None
        self._wake = asyncio.Event()
        self._last_claim_full = False
        self._created_since_claim = 0
        self._stopping = False
        self._loops: list[asyncio.Task[Any]] = []
        self.completed = 0
        self.failed = 0
        self.lost = 0
        self.started_at = 0.0
        self.last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, ctx: AppContext) -> None:
        """Start claiming, heart-beating, reaping and scaling."""
        load_tool_modules(self.settings)
        self.ctx = ctx
        self.scheduler = TaskScheduler(ctx)
        self.executor = TaskExecutor(ctx, self.scheduler)
        if self.settings.llm_base_url:
            # Build the default upstream's client now (its SDK import takes seconds on a busy
            # host), not on the event loop while the first task waits.
            self.executor.providers.for_agent({"provider": "default"})
        self.started_at = time.time()
        self.keeper = None
        if ctx.db.dialect == "postgresql":
            self.keeper = LeaseKeeper(self.settings, self._heartbeat_interval())
            self.keeper.start(asyncio.get_running_loop(), self._leases_lost)
        self._stopping = False
        ready = asyncio.Event()
        self._loops = [
            asyncio.create_task(self._listen(ready), name="agent-pool-listen"),
            asyncio.create_task(self._claim_loop(), name="agent-pool-claim"),
            asyncio.create_task(self._reap_loop(), name="agent-pool-reap"),
            asyncio.create_task(self._scale_loop(), name="agent-pool-scale"),
        ]
        if self.keeper is None:
            self._loops.append(asyncio.create_task(self._heartbeat_loop(), name="agent-pool-heartbeat"))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=3.0)
        log.info("worker %s started (concurrency %d..%d)", self.worker_id, self.min_concurrency, self.max_concurrency)

    async def stop(self) -> None:
        """Stop claiming; finish in-flight tasks within the grace period; hand back the rest."""
        self._stopping = True
        self._wake.set()
        grace = self.settings.agent_shutdown_grace_seconds
        pending = [t for _, t in self.in_flight.values()]
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)
        for claimed, runner in list(self.in_flight.values()):
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner
                if self.scheduler is not None:
                    with contextlib.suppress(Exception):
                        await self.scheduler.release(claimed)
                        log.info("task %s handed back to the queue", claimed.id)
        if self.keeper is not None:
            await asyncio.to_thread(self.keeper.stop)
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop
        self._loops.clear()
        if self.executor is not None:
            await self.executor.providers.aclose()

    async def health(self) -> dict[str, Any]:
        """Worker id, concurrency, in-flight and processed counts."""
        alive = all(not loop.done() for loop in self._loops) and bool(self._loops)
        return {
            "status": "ok" if alive else ("stopped" if self._stopping else "degraded"),
            "worker_id": self.worker_id,
            "in_flight": len(self.in_flight),
            "target_concurrency": self.target,
            "min_concurrency": self.min_concurrency,
            "max_concurrency": self.max_concurrency,
            "completed": self.completed,
            "failed": self.failed,
            "lost_leases": self.lost,
            "last_error": self.last_error,
        }

    # --- loops -------------------------------------------------------------------------------
    async def _listen(self, ready: asyncio.Event) -> None:
        assert self.ctx is not None
        async with self.ctx.events.subscribe() as sub:
            ready.set()
            async for event in sub:
                if event.get("topic") != "tasks":
                    continue
                name = event.get("event")
                if name == "task_created":
                    self._created_since_claim += 1
                    self._wake.set()
                elif name in FREES_A_SLOT and self._more_work_likely():
                    self._wake.set()

    def _more_work_likely(self) -> bool:
        """Whether a finished task should trigger a claim now rather than at the next poll.

        True when this worker has room and its last claim filled its batch (a backlog), or found
        an agent at its concurrency limit (a finished task frees one of its slots), or tasks
        were created since that claim began.
        """
        assert self.scheduler is not None
        return len(self.in_flight) < self.target and (
            self._last_claim_full or self.scheduler.blocked_by_limits or self._created_since_claim > 0
        )

    async def _claim_loop(self) -> None:
        assert self.scheduler is not None
        poll = self.settings.agent_poll_interval_seconds
        while not self._stopping:
            free = self.target - len(self.in_flight)
            if free <= 0:
                self._wake.clear()
                await self._sleep(poll)
                continue
            # Reset before claiming, so that a task_created event arriving during the claim (which
            # may not see its row) is not lost: the next wait returns at once.
            self._wake.clear()
            self._created_since_claim = 0
            wanted = min(free, MAX_CLAIM_BATCH)
            try:
                claimed = await self.scheduler.claim(self.worker_id, wanted)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the loop
                self.last_error = f"claim: {exc}"
                log.warning("claim failed: %s", exc)
                await self._sleep(poll)
                continue
            if self._stopping:
                for task in claimed:
                    await self.scheduler.release(task)
                break
            for task in claimed:
                self._launch(task)
            self._last_claim_full = len(claimed) == wanted
            if claimed and len(claimed) == free and self.target < self.max_concurrency:
                # A full batch suggests a backlog: grow now instead of waiting for the scale loop.
                self.target = min(self.max_concurrency, self.target * 2)
            if len(claimed) < wanted:
                # The queue is drained (as of this claim): wait for task_created, a freed slot or the poll.
                await self._sleep(poll)

    def _launch(self, task: ClaimedTask) -> None:
        runner = asyncio.create_task(self._run(task), name=f"agent-task-{task.id}")
        self.in_flight[task.id] = (task, runner)
        if self.keeper is not None:
            self.keeper.track(task.id, task.lease_token)

    async def _run(self, task: ClaimedTask) -> None:
        assert self.executor is not None
        try:
            try:
                status = await self.executor.execute(task)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away mid-task: the lease will expire and the task rerun
                self.last_error = f"task {task.id}: {exc}"
                log.exception("task %s could not be finished; it runs again when its lease expires", task.id)
                return
            if status == "completed":
                self.completed += 1
            elif status == "failed":
                self.failed += 1
            elif status is None:
                self.lost += 1
        finally:
            # Only this run's entry: the task may have been reaped and claimed again by this worker.
            entry = self.in_flight.get(task.id)
            if entry is not None and entry[0] is task:
                del self.in_flight[task.id]
            if self.keeper is not None:
                self.keeper.untrack(task.id, task.lease_token)
            if self._more_work_likely():
                self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Wait for a wake-up (task_created, a freed slot, stop) or, as the fallback, the poll."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def _heartbeat_interval(self) -> float:
        return max(0.2, self.settings.agent_task_lease_seconds / 4)

    def _leases_lost(self, lost: list[tuple[int, str]]) -> None:
        """Stop the local runs of tasks whose lease this worker no longer holds."""
        for task_id, token in lost:
            entry = self.in_flight.get(task_id)
            if self.executor is not None and task_id in self.executor.storing:
                continue  # its outcome is being stored: the store checks the lease itself
            if entry is not None and entry[0].lease_token == token:
                log.info("task %s no longer held by this worker (cancelled or reaped); stopping it", task_id)
                entry[1].cancel()

    async def _heartbeat_loop(self) -> None:
        """In-loop heartbeat, used where there is no :class:`LeaseKeeper` (SQLite, one host)."""
        assert self.scheduler is not None
        while True:
            await asyncio.sleep(self._heartbeat_interval())
            tokens = {tid: claimed.lease_token for tid, (claimed, _) in self.in_flight.items()}
            try:
                lost = await self.scheduler.heartbeat(tokens)
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"heartbeat: {exc}"
                log.warning("heartbeat failed: %s", exc)
                continue
            self._leases_lost([(tid, tokens[tid]) for tid in lost])

    async def _reap_loop(self) -> None:
        assert self.scheduler is not None and self.executor is not None
        interval = min(REAP_INTERVAL_S, max(0.2, self.settings.agent_task_lease_seconds / 2))
        while True:
            await asyncio.sleep(interval)
            try:
                requeued, failed = await self.scheduler.reap_expired()
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"reap: {exc}"
                log.warning("reaping expired leases failed: %s", exc)
                continue
            if requeued:
                log.info("requeued %d task(s) whose worker stopped responding: %s", len(requeued), requeued)
                self._wake.set()
            if failed:
                self.executor.count_reaped(failed)

    async def _scale_loop(self) -> None:
        assert self.scheduler is not None and self.ctx is not None
        agents = AgentService(self.ctx)
        rounds = 0
        while True:
            try:
                if rounds % 15 == 0:  # every ~30 s: agent_active_count{type}
                    await agents.refresh_active_gauge()
                rounds += 1
                hit_rate = self.ctx.cache.hit_rate()
                if hit_rate is not None:
                    REDIS_CACHE_HIT_RATE.set(hit_rate)
                depth = await self.scheduler.queue_depth()
                wanted = len(self.in_flight) + depth
                new_target = max(self.min_concurrency, 1, min(self.max_concurrency, wanted))
                if new_target != self.target:
                    log.debug("concurrency %d -> %d (queue depth %d)", self.target, new_target, depth)
                    self.target = new_target
                    self._wake.set()
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"scale: {exc}"
            await asyncio.sleep(SCALE_INTERVAL_S)


def create_worker_pool(settings: Settings) -> WorkerPool | None:
    """``SERVICE_FACTORIES`` entry: the in-API worker pool, unless disabled by settings."""
    if not settings.agent_workers_in_api:
        return None
    return WorkerPool(settings)
