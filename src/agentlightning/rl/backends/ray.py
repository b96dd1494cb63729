"""Run training jobs as Ray tasks, so sessions spread over a Ray cluster.

Each job gets a tiny :class:`TrainingControl` actor (zero CPUs) that carries updates from the task
to the manager and the stop flag from the manager to the task. The task trains in a temporary
directory on whichever node runs it and ships each checkpoint's bytes through the actor, so the
API host stores every checkpoint without shared storage; resuming sends the checkpoint back the
same way. Workers need ``agentlightning[rl]`` installed (the same image as the API).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import ray

from agentlightning.rl.backends.base import Backend, Outcome, TrainingHandle
from agentlightning.rl.classic.evaluation import EvaluationRequest, evaluate_saved
from agentlightning.rl.classic.runner import TrainingJob, run_training

__all__ = ["RayBackend", "RayHandle", "TrainingControl"]


@ray.remote(num_cpus=0)
class TrainingControl:
    """Mailbox between one Ray training task and the manager."""

    def __init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._stop = False

    def push(self, update: dict[str, Any]) -> None:
        """Called by the task: queue one update."""
        self._updates.append(update)

    def drain(self) -> list[dict[str, Any]]:
        """Called by the manager: take every queued update."""
        out, self._updates = self._updates, []
        return out

    def request_stop(self) -> None:
        """Called by the manager: ask the task to stop."""
        self._stop = True

    def stop_requested(self) -> bool:
        """Called by the task between steps."""
        return self._stop


class _ActorReporter:
    """Reporter inside the Ray task: checkpoints travel as bytes."""

    def __init__(self, control: Any) -> None:
        self.control = control

    def report(self, update: dict[str, Any]) -> None:
        if update.get("type") == "checkpoint":
            with open(update["path"], "rb") as fh:
                update = {**update, "path": os.path.basename(update["path"]), "data": fh.read()}
        self.control.push.remote(update)

    def stop_requested(self) -> bool:
        return bool(ray.get(self.control.stop_requested.remote()))


def _train_task(job: TrainingJob, control: Any, resume_bytes: bytes | None) -> dict[str, Any]:
    """Body of the Ray task: train in a scratch directory on the worker node."""
    with tempfile.TemporaryDirectory(prefix=f"agl-rl-{job.experiment_id}-") as scratch:
        resume_from = None
        if resume_bytes is not None:
            resume_from = os.path.join(scratch, "resume.zip")
            with open(resume_from, "wb") as fh:
                fh.write(resume_bytes)
        local = TrainingJob(**{**job.to_dict(), "workdir": scratch, "resume_from": resume_from})
        result = run_training(local, _ActorReporter(control))
        # Make sure every update reached the actor before the result is visible.
        ray.get(control.stop_requested.remote())
        return result


def _evaluate_task(request: EvaluationRequest, model_bytes: bytes, torch_threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agl-rl-eval-") as scratch:
        path = os.path.join(scratch, "model.zip")
        with open(path, "wb") as fh:
            fh.write(model_bytes)
        return evaluate_saved(EvaluationRequest(**{**request.to_dict(), "model_path": path}), torch_threads)


def _local_path(job: TrainingJob, name: str, final: bool) -> str:
    folder = job.workdir if final else os.path.join(job.workdir, "checkpoints")
    return os.path.join(folder, name)


class RayHandle(TrainingHandle):
    """A training job running as a Ray task."""

    def __init__(self, job: TrainingJob, control: Any, ref: Any) -> None:
        super().__init__(job)
        self.control = control
        self.ref = ref
        self._future = asyncio.wrap_future(ref.future())

    def _store(self, update: dict[str, Any]) -> dict[str, Any]:
        """Write a shipped checkpoint under the experiment's local directory."""
        data = update.pop("data", None)
        if update.get("type") != "checkpoint" or data is None:
            return update
        path = _local_path(self.job, update["path"], bool(update.get("final")))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        return {**update, "path": path}

    async def drain(self) -> list[dict[str, Any]]:
        finished = self._future.done()
        shipped = await self.control.drain.remote()
        updates = await asyncio.to_thread(lambda: [self._store(u) for u in shipped])
        if finished and self.outcome is None:
            try:
                result = dict(self._future.result())
                result["final_model"] = _local_path(self.job, os.path.basename(result["final_model"]), True)
                self.outcome = Outcome(result=result)
            except Exception as exc:  # noqa: BLE001 - RayTaskError wraps whatever the task raised
                cause = getattr(exc, "cause", None) or exc
                self.outcome = Outcome(error=f"{type(cause).__name__}: {cause}", traceback=str(exc)[-8000:])
        return updates

    async def request_stop(self) -> None:
        await self.control.request_stop.remote()

    async def kill(self) -> None:
        ray.cancel(self.ref, force=True)
        await self.close()
        if self.outcome is None:
            self.outcome = Outcome(error="Ray training task cancelled")

    async def close(self) -> None:
        ray.kill(self.control, no_restart=True)


class RayBackend(Backend):
    """Launches each training job as a Ray task (``num_cpus`` CPUs each) on the connected cluster."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1, torch_threads: int = 1) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.torch_threads = torch_threads
        self._train = ray.remote(_train_task)
        self._evaluate = ray.remote(_evaluate_task)

    async def start(self) -> None:
        """Connect to ``address`` (or start a local Ray) unless this process is already connected."""
        if not ray.is_initialized():
            await asyncio.to_thread(ray.init, address=self.address, ignore_reinit_error=True, log_to_driver=False)

    async def launch(self, job: TrainingJob) -> RayHandle:
        await self.start()
        resume_bytes = None
        if job.resume_from:
            with open(job.resume_from, "rb") as fh:
                resume_bytes = fh.read()
        control = TrainingControl.remote()  # type: ignore[attr-defined]  # added by @ray.remote
        ref = self._train.options(num_cpus=self.num_cpus, max_retries=0).remote(job, control, resume_bytes)
        return RayHandle(job, control, ref)

    async def evaluate(self, request: EvaluationRequest) -> dict[str, Any]:
        await self.start()
        with open(request.model_path, "rb") as fh:
            model_bytes = fh.read()
        ref = self._evaluate.options(num_cpus=self.num_cpus, max_retries=0).remote(
            request, model_bytes, self.torch_threads
        )
        return await ref

    async def health(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "connected": ray.is_initialized()}
        if ray.is_initialized():
            info["cluster_cpus"] = ray.cluster_resources().get("CPU")
        return info
