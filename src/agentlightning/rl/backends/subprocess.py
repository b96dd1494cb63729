"""Run each training job in its own child process (the default backend).

Children are started with the ``spawn`` method: a fresh interpreter, no inherited event loop,
threads or database connections. Updates travel back over a ``multiprocessing.Queue``; a stop
request is a ``multiprocessing.Event`` the training callback polls. Evaluations run in a small
spawn-based process pool that is reused between calls.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue as queue_mod
import threading
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from agentlightning.rl.backends.base import Backend, Outcome, TrainingHandle
from agentlightning.rl.classic.evaluation import EvaluationRequest, evaluate_saved
from agentlightning.rl.classic.runner import TrainingJob, run_training

__all__ = ["QueueReporter", "SubprocessBackend", "SubprocessHandle"]

_ctx = mp.get_context("spawn")


class QueueReporter:
    """Reporter for a child process: updates into a queue, stop flag from an event."""

    def __init__(self, updates: Any, stop: Any) -> None:
        self.updates = updates
        self.stop = stop

    def report(self, update: dict[str, Any]) -> None:
        """Send ``update`` to the parent."""
        self.updates.put(update)

    def stop_requested(self) -> bool:
        """Whether the parent set the stop event."""
        return bool(self.stop.is_set())


def _exit_with_parent() -> None:
    """Die with the parent: an orphaned run would keep training and writing checkpoints that a
    recovered run of the same experiment now owns."""
    parent = mp.parent_process()
    if parent is None:
        return

    def _watch() -> None:
        from multiprocessing.connection import wait

        wait([parent.sentinel])
        os._exit(70)

    threading.Thread(target=_watch, name="parent-watch", daemon=True).start()


def _child_main(job: TrainingJob, updates: Any, stop: Any) -> None:
    """Entry point of the child process: run the job, send the result or the error last."""
    _exit_with_parent()
    try:
        result = run_training(job, QueueReporter(updates, stop))
        updates.put({"type": "result", "result": result})
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent
        updates.put(
            {"type": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-8000:]}
        )
    finally:
        updates.close()
        updates.join_thread()


class SubprocessHandle(TrainingHandle):
    """A training job running in a child process."""

    def __init__(self, job: TrainingJob, process: Any, updates: Any, stop: Any) -> None:
        super().__init__(job)
        self.process = process
        self.updates = updates
        self.stop = stop

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self.process.pid

    async def drain(self) -> list[dict[str, Any]]:
        alive = self.process.is_alive()  # read before draining: all it sent before exiting is queued
        out: list[dict[str, Any]] = []
        while True:
            try:
                item = self.updates.get_nowait()
            except queue_mod.Empty:
                break
            if item.get("type") == "result":
                self.outcome = Outcome(result=item["result"])
            elif item.get("type") == "error":
                self.outcome = Outcome(error=item["error"], traceback=item.get("traceback"))
            else:
                out.append(item)
        if not alive and self.outcome is None:
            await asyncio.to_thread(self.process.join, 5)
            self.outcome = Outcome(error=f"training process exited with code {self.process.exitcode} without a result")
        return out

    async def request_stop(self) -> None:
        self.stop.set()

    async def close(self) -> None:
        await asyncio.to_thread(self.process.join, 10)
        if self.process.is_alive():  # sent its result but hangs on exit
            self.process.kill()
            await asyncio.to_thread(self.process.join, 5)

    async def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, 10)
        if self.outcome is None:
            self.outcome = Outcome(error="training process killed")


class SubprocessBackend(Backend):
    """Launches one spawn-started child process per training job."""

    name = "subprocess"

    def __init__(self, eval_workers: int = 1, torch_threads: int = 1) -> None:
        self.eval_workers = eval_workers
        self.torch_threads = torch_threads
        self._pool: ProcessPoolExecutor | None = None

    async def launch(self, job: TrainingJob) -> SubprocessHandle:
        updates = _ctx.Queue()
        stop = _ctx.Event()
        process = _ctx.Process(
            target=_child_main, args=(job, updates, stop), name=f"agl-rl-{job.experiment_id}", daemon=True
        )
        await asyncio.to_thread(process.start)
        return SubprocessHandle(job, process, updates, stop)

    async def evaluate(self, request: EvaluationRequest) -> dict[str, Any]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.eval_workers, mp_context=_ctx)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, evaluate_saved, request, self.torch_threads)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
