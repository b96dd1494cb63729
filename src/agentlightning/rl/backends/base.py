"""The interface between the experiment manager and the places training runs.

A :class:`Backend` launches a :class:`~agentlightning.rl.classic.runner.TrainingJob` and returns a
:class:`TrainingHandle`; the manager polls the handle (``drain``), asks it to stop, and reads its
:class:`Outcome` once it is done. Backends also evaluate saved models off the event loop.

A later job kind (agent optimisation: APO, bandits, GRPO) plugs in by giving the job a different
``kind`` and the worker a different entry function; the handle protocol stays the same.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from agentlightning.rl.classic.evaluation import EvaluationRequest
from agentlightning.rl.classic.runner import TrainingJob

__all__ = ["Backend", "Outcome", "TrainingHandle"]


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the runner's result, or the error that ended it."""

    result: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None

    @property
    def failed(self) -> bool:
        """True when the run raised or its worker died."""
        return self.error is not None


class TrainingHandle(abc.ABC):
    """A running training job, seen from the manager."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.outcome: Outcome | None = None

    @property
    def experiment_id(self) -> int:
        """The experiment this run belongs to."""
        return self.job.experiment_id

    @property
    def done(self) -> bool:
        """True once the run has ended and its :attr:`outcome` is known."""
        return self.outcome is not None

    @abc.abstractmethod
    async def drain(self) -> list[dict[str, Any]]:
        """Updates reported since the last call; sets :attr:`outcome` when the run has ended."""

    @abc.abstractmethod
    async def request_stop(self) -> None:
        """Ask the run to stop at its next check (it saves a final model, then ends)."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """End the run now, without a final save."""

    async def close(self) -> None:
        """Release the worker once the run is done (join the process, drop the actor)."""


class Backend(abc.ABC):
    """Somewhere training jobs and evaluations run."""

    name: str = "backend"

    async def start(self) -> None:
        """Prepare (connect to a cluster, ...)."""

    async def close(self) -> None:
        """Release resources; running handles must have been stopped or killed."""

    @abc.abstractmethod
    async def launch(self, job: TrainingJob) -> TrainingHandle:
        """Start ``job`` and return its handle without waiting for it."""

    @abc.abstractmethod
    async def evaluate(self, request: EvaluationRequest) -> dict[str, Any]:
        """Evaluate a saved model; returns the evaluation summary."""

    async def health(self) -> dict[str, Any]:
        """A small report for ``/api/v2/system/status``."""
        return {"backend": self.name}
