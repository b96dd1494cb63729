"""The SDK's side of an agent's online bandit: a snapshot of its variants and posteriors, sampled
locally.

``enable_rl_training()`` fetches ``GET /api/v2/agents/{id}/bandit`` with each refresh (only for an
agent whose ``config.bandit.enabled`` is set) and keeps a :class:`BanditSnapshot`. Each rollout
then draws its variant from that snapshot by Thompson sampling (:mod:`agentlightning.thompson`,
the platform's own arithmetic): no request per call. Between two refreshes the posteriors do not
move, so the draws of that interval form one batch of Thompson sampling; the rewards of the batch
reach the posteriors on the platform (the reward listener) and the next refresh brings them back.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentlightning.sdk.models import AgentResources, BanditState, BanditVariant
from agentlightning.thompson import DEFAULT_TASK_TYPE, Arm, PosteriorKind, choose

#: The platform's bound on a task type's length (longer ones are cut, as the platform does).
MAX_TASK_TYPE = 64


def task_type_of(metadata: Mapping[str, Any] | None) -> str:
    """The task type a rollout's metadata declares (``default`` without one), as the platform reads it."""
    value = (metadata or {}).get("task_type")
    return str(value)[:MAX_TASK_TYPE] if isinstance(value, str) and value.strip() else DEFAULT_TASK_TYPE


@dataclass
class BanditSnapshot:
    """An agent's variants (with their overrides) and posteriors at one refresh."""

    kind: PosteriorKind
    variants: dict[str, BanditVariant]
    #: ``{task_type: {variant: Arm}}``
    arms: dict[str, dict[str, Arm]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _applied: dict[str, tuple[AgentResources, AgentResources]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, state: BanditState, rng: random.Random | None = None) -> BanditSnapshot | None:
        """The snapshot of ``state``, or ``None`` when the agent runs no bandit."""
        variants = {v.name: v for v in state.definitions}
        if not state.enabled or not variants:
            return None
        arms: dict[str, dict[str, Arm]] = {}
        for arm in state.arms:
            arms.setdefault(arm.task_type, {})[arm.variant] = Arm(
                alpha=arm.alpha,
                beta=arm.beta,
                pulls=arm.pulls,
                observations=arm.observations,
                reward_sum=arm.reward_sum,
                reward_sq_sum=arm.reward_sq_sum,
            )
        kind: PosteriorKind = "gaussian" if state.posterior == "gaussian" else "beta"
        return cls(kind, variants, arms, rng or random.Random())

    def apply(self, resources: AgentResources, name: str) -> AgentResources:
        """``resources`` with variant ``name`` applied (made once per refresh and variant)."""
        cached = self._applied.get(name)
        if cached is None or cached[0] is not resources:
            cached = self._applied[name] = (resources, with_variant(resources, self.variants[name]))
        return cached[1]

    def choose(self, task_type: str) -> str:
        """Thompson-sample a variant for one rollout of ``task_type``."""
        with self._lock:  # random.Random is not safe to share between threads
            return choose(self.arms.get(task_type, {}), sorted(self.variants), self.kind, self.rng)


def with_variant(resources: AgentResources, variant: BanditVariant) -> AgentResources:
    """``resources`` with the variant's prompt, model and temperature (and its name). Its ``tools``
    name platform tools, which mean nothing to the wrapped code: they are not applied."""
    changes: dict[str, Any] = {"variant": variant.name}
    for name in ("system_prompt", "model", "temperature"):
        value = getattr(variant, name)
        if value is not None:
            changes[name] = value
    return resources.model_copy(update=changes)
