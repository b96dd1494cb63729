"""The RL experiment manager: a background service that runs what is queued.

Every ``RL_POLL_INTERVAL_SECONDS`` it

1. drains the updates of its running jobs into the database (``metrics``, ``rl_metric_points``,
   ``checkpoints``) and the event bus (``training_update`` on topic ``training``), and finishes
   jobs that ended (``completed | stopped | failed``, with the error kept);
2. forwards stop requests (``stop_requested_at``, set by any API replica) to its jobs, renews
   the lease of the experiments it runs and drops those whose lease another manager took over;
3. recovers ``running`` experiments whose manager stopped renewing its lease (a crash or a
   restart): back to ``queued`` to resume from their latest checkpoint, or ``failed`` with the
   reason when there is none or the resume budget is spent;
4. claims the oldest ``queued`` experiments while fewer than ``RL_MAX_CONCURRENT_SESSIONS`` of
   its jobs run, and launches each on its backend (a child process, or Ray when ``RAY_ADDRESS`` is
   set or the experiment asks for it).

On shutdown, running jobs are asked to stop (they save a final model) and go back to ``queued``,
so the next server resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from agentlightning.core.context import AppContext
from agentlightning.observability.metrics import RL_SESSIONS, RL_TRAINING_DURATION
from agentlightning.rl.backends import backend_name, make_backend
from agentlightning.rl.backends.base import Backend, TrainingHandle
from agentlightning.rl.classic.evaluation import EvaluationRequest
from agentlightning.rl.classic.runner import TrainingJob
from agentlightning.rl.experiments import ExperimentService, experiment_dict, latest_resumable
from agentlightning.settings import Settings
from agentlightning.storage.types import as_utc, utcnow

__all__ = ["ExperimentManager", "create_manager"]

log = logging.getLogger(__name__)


def create_manager(settings: Settings) -> ExperimentManager:
    """Factory listed in ``SERVICE_FACTORIES``."""
    return ExperimentManager(settings)


def _instance_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _owner_dead_here(owner: str | None) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    if not owner:
        return True
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # an earlier manager of this very process (e.g. the CLI restarting one)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ExperimentManager:
    """Queues, launches, supervises and recovers RL experiments (a ``BackgroundService``)."""

    name = "rl"

    def __init__(
        self,
        settings: Settings,
        *,
        max_concurrent: int | None = None,
        only_ids: set[int] | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.max_concurrent = max_concurrent or settings.rl_max_concurrent_sessions
        self.only_ids = only_ids
        self.instance_id = instance_id or _instance_id()
        self.handles: dict[int, TrainingHandle] = {}
        self._backends: dict[str, Backend] = {}
        self._ctx: AppContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_heartbeat = 0.0
        self._last_recovery = 0.0
        self._stop_forwarded: set[int] = set()
        self._shutting_down = False
        self._errors = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def ctx(self) -> AppContext:
        """The context given to :meth:`start`."""
        assert self._ctx is not None, "manager not started"
        return self._ctx

    @property
    def experiments(self) -> ExperimentService:
        """The experiment service: every change to an experiment goes through it."""
        return ExperimentService(self.ctx)

    async def start(self, ctx: AppContext) -> None:
        """Recover what a previous server left running, then start the supervision loop."""
        self._ctx = ctx
        await self.recover(startup=True)
        self._task = asyncio.create_task(self._loop(), name="rl-manager")

    async def stop(self) -> None:
        """Stop the loop; ask running jobs to checkpoint and stop, and queue them for resumption."""
        self._shutting_down = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for handle in list(self.handles.values()):
            with contextlib.suppress(Exception):
                await handle.request_stop()
        deadline = time.monotonic() + self.settings.rl_shutdown_grace_seconds
        while self.handles and time.monotonic() < deadline:
            await self.pump()
            await asyncio.sleep(0.1)
        for handle in list(self.handles.values()):
            await handle.kill()
            await self._finish(handle)
        for backend in self._backends.values():
            with contextlib.suppress(Exception):
                await backend.close()
        self._backends.clear()

    async def health(self) -> dict[str, Any]:
        """Running jobs, capacity and backends."""
        return {
            "status": "up" if self._task is not None and not self._task.done() else "down",
            "instance": self.instance_id,
            "running": sorted(self.handles),
            "capacity": self.max_concurrent,
            "loop_errors": self._errors,
            "backends": [await b.health() for b in self._backends.values()],
        }

    async def _loop(self) -> None:
        task = asyncio.current_task()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive a database hiccup
                self._errors += 1
                log.exception("RL manager tick failed")
            # A cancel that lands while a library's own timeout completes can be swallowed there
            # (``asyncio.wait_for`` before Python 3.12); the request stays counted, so honour it here
            # rather than run on after ``stop()`` (or a test's crash) asked the loop to end.
            if task is not None and getattr(task, "cancelling", lambda: 0)():
                raise asyncio.CancelledError
            await asyncio.sleep(self.settings.rl_poll_interval_seconds)

    async def tick(self) -> None:
        """One round of supervision (public so tests and the CLI can drive it)."""
        await self.pump()
        await self._sync_leases()
        now = time.monotonic()
        if now - self._last_recovery >= self.settings.rl_lease_seconds / 2:
            self._last_recovery = now
            await self.recover()
        await self.claim()

    # ------------------------------------------------------------------ backends
    def backend_for(self, requested: str | None) -> Backend:
        """The backend an experiment runs on: Ray when asked or when ``RAY_ADDRESS`` is set."""
        name = backend_name(self.settings, requested)
        if name not in self._backends:
            self._backends[name] = make_backend(self.settings, name)
        return self._backends[name]

    async def evaluate(self, request: EvaluationRequest, backend: str | None) -> dict[str, Any]:
        """Evaluate a saved model on the experiment's backend (never on the event loop)."""
        return await self.backend_for(backend).evaluate(request)

    # ------------------------------------------------------------------ claim and launch
    async def claim(self) -> list[int]:
        """Launch queued experiments while there is capacity; returns the ids launched."""
        capacity = self.max_concurrent - len(self.handles)
        if capacity <= 0 or self._shutting_down:
            return []
        launched: list[int] = []
        for experiment_id in await self.experiments.queued_ids(capacity, self.only_ids):
            if await self._claim_one(experiment_id):
                launched.append(experiment_id)
        return launched

    async def _claim_one(self, experiment_id: int) -> bool:
        queued = await self.experiments.row(experiment_id)
        if queued is None or queued.status != "queued":
            return False
        if queued.kind == "agent":
            return await self._claim_agent(experiment_id)
        backend = self.backend_for(queued.config.get("backend"))
        exp = await self.experiments.claim(experiment_id, owner=self.instance_id, backend=backend.name)
        if exp is None:  # another manager was faster
            return False
        resume = latest_resumable(list(exp.checkpoints or []))
        job = TrainingJob(
            experiment_id=exp.id,
            config=dict(exp.config),
            workdir=os.path.abspath(os.path.join(self.settings.rl_artifacts_dir, "experiments", str(exp.id))),
            resume_from=resume["path"] if resume else None,
            torch_threads=self.settings.rl_torch_threads,
            report_interval_s=self.settings.rl_report_interval_seconds,
        )
        data = experiment_dict(exp)
        try:
            self.handles[experiment_id] = await backend.launch(job)
        except Exception as exc:  # noqa: BLE001 - e.g. Ray unreachable
            log.exception("launching experiment %s failed", experiment_id)
            await self._set_final(experiment_id, "failed", error=f"could not launch on {backend.name}: {exc}")
            return False
        self._stop_forwarded.discard(experiment_id)
        await self.experiments.publish(data, "running", resumed_from_timesteps=resume["timesteps"] if resume else None)
        return True

    async def _claim_agent(self, experiment_id: int) -> bool:
        """Run an agent optimisation (apo, bandit, grpo) in this process (see ``rl/auto/job.py``)."""
        from agentlightning.rl.auto.job import launch

        exp = await self.experiments.claim(experiment_id, owner=self.instance_id, backend="inprocess")
        if exp is None:
            return False
        job = TrainingJob(
            experiment_id=exp.id,
            config=dict(exp.config),
            workdir=os.path.abspath(os.path.join(self.settings.rl_artifacts_dir, "experiments", str(exp.id))),
        )
        self.handles[experiment_id] = launch(self.ctx, job, actor=exp.created_by)
        self._stop_forwarded.discard(experiment_id)
        await self.experiments.publish(experiment_dict(exp), "running", attempt=exp.attempts)
        return True

    # ------------------------------------------------------------------ supervision
    async def pump(self) -> None:
        """Persist every running job's updates; finish jobs that ended."""
        for handle in list(self.handles.values()):
            updates = await handle.drain()
            if updates:
                await self._apply(handle, updates)
            if handle.done:
                await self._finish(handle)

    async def _apply(self, handle: TrainingHandle, updates: list[dict[str, Any]]) -> None:
        experiment_id = handle.experiment_id
        base, events = await self.experiments.record_updates(experiment_id, updates)
        if base is None:
            return
        seconds = base["metrics"].get("training_seconds")
        if seconds is not None:
            RL_TRAINING_DURATION.labels(experiment_id=str(experiment_id)).set(seconds)
        for event in events:
            change = event.pop("change")
            await self.experiments.publish(base, change, **event)

    async def _finish(self, handle: TrainingHandle) -> None:
        """Record how a job ended and free its slot."""
        experiment_id = handle.experiment_id
        self.handles.pop(experiment_id, None)
        self._stop_forwarded.discard(experiment_id)
        with contextlib.suppress(Exception):
            await handle.close()
        outcome = handle.outcome
        exp = await self.experiments.row(experiment_id)
        user_stop = exp is not None and exp.stop_requested_at is not None
        if outcome is None or outcome.failed:
            error = outcome.error if outcome else "training ended without an outcome"
            log.warning(
                "experiment %s failed: %s\n%s", experiment_id, error, (outcome.traceback if outcome else "") or ""
            )
            if self._shutting_down and not user_stop:
                await self._requeue_or_fail(experiment_id, f"server shut down during training ({error})")
            else:
                await self._set_final(experiment_id, "failed", error=error)
            return
        result = outcome.result or {}
        if result.get("status") == "stopped" and self._shutting_down and not user_stop:
            await self._requeue_or_fail(experiment_id, "server shut down during training")
            return
        status = "completed" if result.get("status") == "completed" else "stopped"
        await self._set_final(experiment_id, status, result=result)

    async def _set_final(
        self, experiment_id: int, status: str, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> None:
        data = await self.experiments.finish(experiment_id, status, error=error, result=result)
        if data is None:
            return
        if data["kind"] == "agent":
            from agentlightning.rl.auto.triggers import TriggerService

            await TriggerService(self.ctx).experiment_ended(experiment_id, status, error)
        metrics = data["metrics"]
        RL_SESSIONS.labels(algorithm=data["algorithm"], status=status).inc()
        if "training_seconds" in metrics:
            RL_TRAINING_DURATION.labels(experiment_id=str(experiment_id)).set(metrics["training_seconds"])
        await self.experiments.publish(data, status, error=error, metrics=metrics)

    async def _requeue_or_fail(self, experiment_id: int, reason: str, *, expected_owner: str | None = None) -> str:
        """Queue a running experiment again to resume from its checkpoint, or fail it with ``reason``."""
        exp = await self.experiments.row(experiment_id)
        if exp is None or exp.status != "running":
            return "gone"
        if expected_owner is not None and exp.lease_owner != expected_owner:
            return "taken"
        resume = latest_resumable(list(exp.checkpoints or []))
        max_resumes = int((exp.config or {}).get("max_resumes", 3))
        user_stop = exp.stop_requested_at is not None
        if user_stop:
            await self._set_final(experiment_id, "stopped", error=None)
            return "stopped"
        if resume is None and exp.kind != "agent":  # an agent optimisation re-runs from the start
            await self._set_final(experiment_id, "failed", error=f"{reason}; no checkpoint to resume from")
            return "failed"
        if exp.attempts > max_resumes:
            await self._set_final(
                experiment_id, "failed", error=f"{reason}; resume budget spent ({max_resumes} resumes)"
            )
            return "failed"
        data = await self.experiments.requeue(experiment_id)
        moved = data is not None
        if data is not None:
            RL_SESSIONS.labels(algorithm=data["algorithm"], status="requeued").inc()
            await self.experiments.publish(
                data, "queued", reason=reason, resume_from_timesteps=resume["timesteps"] if resume else None
            )
        return "queued" if moved else "gone"

    async def _sync_leases(self) -> None:
        """Forward stop requests to jobs; renew leases; drop jobs whose lease was taken over."""
        if not self.handles:
            return
        ids = list(self.handles)
        rows = await self.experiments.lease_states(ids)
        now = time.monotonic()
        if now - self._last_heartbeat >= self.settings.rl_lease_seconds / 3:
            self._last_heartbeat = now
            await self.experiments.renew_leases(ids, self.instance_id)
        for experiment_id, owner, stop_requested_at, status in rows:
            handle = self.handles.get(experiment_id)
            if handle is None:
                continue
            if owner != self.instance_id or status != "running":
                log.warning("experiment %s was taken over (%s, %s); dropping local run", experiment_id, owner, status)
                self.handles.pop(experiment_id, None)
                await handle.kill()
                continue
            if stop_requested_at is not None and experiment_id not in self._stop_forwarded:
                self._stop_forwarded.add(experiment_id)
                await handle.request_stop()

    async def recover(self, *, startup: bool = False) -> list[tuple[int, str]]:
        """Requeue or fail ``running`` experiments whose manager is gone; returns (id, outcome)."""
        cutoff = utcnow() - timedelta(seconds=self.settings.rl_lease_seconds)
        rows = await self.experiments.running_leases()
        outcomes: list[tuple[int, str]] = []
        for experiment_id, owner, heartbeat_at in rows:
            if experiment_id in self.handles or owner == self.instance_id:
                continue
            if self.only_ids is not None and experiment_id not in self.only_ids:
                continue
            expired = heartbeat_at is None or as_utc(heartbeat_at) < cutoff
            if not (expired or (startup and _owner_dead_here(owner))):
                continue
            reason = f"the server running it ({owner or 'unknown'}) stopped renewing its lease"
            outcome = await self._requeue_or_fail(experiment_id, reason, expected_owner=owner)
            log.warning("recovered experiment %s: %s", experiment_id, outcome)
            outcomes.append((experiment_id, outcome))
        return outcomes
