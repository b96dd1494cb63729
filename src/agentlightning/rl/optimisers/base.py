"""What every agent optimiser (``apo``, ``bandit``, ``grpo``) is given and what it gives back.

An optimiser never touches the database or HTTP: the Auto-RL machinery (``rl/auto``) builds an
:class:`OptimiserContext` (the incumbent resources, training tasks with verifiers, the agent's
low-reward rollouts, an evaluator that runs the agent with given resources, a critic LLM, a
progress sink) and decides on its own, on held-out tasks the optimiser never sees, whether the
returned candidate is promoted.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class AgentResources:
    """The parts of an agent an optimiser may change, versioned and promoted as one bundle."""

    system_prompt: str
    model: str | None = None
    temperature: float | None = None
    #: Names of the tools the agent may call (``None``: the agent's own list).
    tools: tuple[str, ...] | None = None
    #: Path or name of a LoRA adapter to serve the model with (``grpo``).
    adapter: str | None = None
    #: Name of the declared variant these resources come from (``bandit``).
    variant: str | None = None

    def replace(self, **changes: Any) -> AgentResources:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with promotions and shown by the API)."""
        data = dataclasses.asdict(self)
        if self.tools is not None:
            data["tools"] = list(self.tools)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentResources:
        """The inverse of :meth:`as_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("tools") is not None:
            values["tools"] = tuple(values["tools"])
        return cls(**values)


@dataclass(frozen=True)
class VerifiableTask:
    """A task with a machine-checkable answer (see ``agentlightning.rollouts.verifiers``)."""

    id: str
    prompt: str
    #: A verifier spec, e.g. ``{"type": "numeric", "expected": 42, "tolerance": 0.01}``.
    verifier: Mapping[str, Any]
    task_type: str = "default"
    context: Mapping[str, Any] = field(default_factory=dict)


class Evaluator(Protocol):
    """Runs the agent with ``resources`` on ``tasks``; one reward in [0, 1] per task, same order."""

    async def __call__(self, resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[float]: ...


@dataclass(frozen=True)
class Observation:
    """One evaluated run: its reward and what the agent did, for optimisers that read failures."""

    reward: float
    #: The agent's final answer ("" when the run produced none).
    answer: str = ""
    #: Names of the tools the agent called, in order.
    tool_calls: tuple[str, ...] = ()
    #: Why the run failed, when it did (e.g. "the model returned an empty answer").
    error: str | None = None
    #: True when the run used up the agent's step limit.
    step_limit_reached: bool = False


class Observer(Protocol):
    """Like :class:`Evaluator`, with what the agent did on each task (same order)."""

    async def __call__(self, resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[Observation]: ...


class Critic(Protocol):
    """A chat LLM (the local model or a configured upstream) that answers a list of messages."""

    async def __call__(self, messages: Sequence[Mapping[str, str]]) -> str: ...


@dataclass
class OptimiserContext:
    """Everything an optimiser may use for one optimisation run."""

    agent_id: int
    incumbent: AgentResources
    train_tasks: Sequence[VerifiableTask]
    #: The agent's own recent low-reward rollouts: ``{"input", "output", "reward"}`` each.
    low_reward_rollouts: Sequence[Mapping[str, Any]]
    evaluate: Evaluator
    critic: Critic
    #: Algorithm-specific settings from the experiment (``rounds``, ``beam_width``, ``variants``...).
    config: Mapping[str, Any]
    #: Streams progress: ``await report(step, {"reward": ..., ...})``.
    report: Callable[[int, Mapping[str, float]], Awaitable[None]]
    #: True once the user asked the experiment to stop; check between steps.
    should_stop: Callable[[], bool]
    #: A directory of this run for files (adapters, checkpoints); survives a restart.
    workdir: Path
    #: ``evaluate`` with the agent's answers and tool calls, when the evaluator can tell them.
    observe: Observer | None = None


@dataclass
class OptimiserResult:
    """The best candidate found, its training score, and every candidate tried (for the user)."""

    best: AgentResources
    best_score: float
    incumbent_score: float
    #: One entry per candidate: ``{"round", "resources", "score", ...}``.
    candidates: list[dict[str, Any]] = field(default_factory=list)


class Optimiser(ABC):
    """One agent-optimisation algorithm; registered in :data:`OPTIMISERS` by its ``name``."""

    name: ClassVar[str]

    @abstractmethod
    async def optimise(self, ctx: OptimiserContext) -> OptimiserResult:
        """Search for resources that score better than ``ctx.incumbent`` on ``ctx.train_tasks``."""


#: ``algorithm`` name -> optimiser class; each optimiser module adds itself here.
OPTIMISERS: dict[str, type[Optimiser]] = {}


def register(cls: type[Optimiser]) -> type[Optimiser]:
    """Class decorator adding an optimiser to :data:`OPTIMISERS`."""
    OPTIMISERS[cls.name] = cls
    return cls
