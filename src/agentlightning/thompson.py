"""Thompson sampling's arithmetic, shared by the server's bandit and the SDK (standard library only).

An *arm* is one (task type, variant) pair with a posterior over how good the variant is on that
type of task: a Beta posterior on success (reward >= 0.5, the platform's definition of a
successful rollout), or a Gaussian one on the reward itself. To pick a variant, draw one sample
from each arm's posterior and take the largest (:func:`choose`).

The server's online bandit (``rl/optimisers/bandit_service.py``) and offline optimiser
(``rl/optimisers/bandit.py``) and the SDK's local sampling (``sdk/variants.py``) all use this one
module, so a posterior means the same thing everywhere; importing it loads nothing but the
standard library (``import agentlightning`` stays light).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

PosteriorKind = Literal["beta", "gaussian"]
#: A reward at or above this is a success (the Beta posterior counts successes).
SUCCESS_THRESHOLD = 0.5
#: Task type of tasks (and rollouts) that declare none.
DEFAULT_TASK_TYPE = "default"
#: Name of the incumbent's own resources when they compete as a variant.
INCUMBENT = "incumbent"


@dataclass
class Arm:
    """The posterior of one (task type, variant) pair: Beta(alpha, beta) and reward moments."""

    alpha: float = 1.0
    beta: float = 1.0
    #: Times the arm was chosen.
    pulls: int = 0
    #: Rewards observed.
    observations: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0

    def update(self, reward: float) -> None:
        """Take one observed reward (clipped to [0, 1]) into the posterior."""
        r = min(1.0, max(0.0, float(reward)))
        if r >= SUCCESS_THRESHOLD:
            self.alpha += 1
        else:
            self.beta += 1
        self.observations += 1
        self.reward_sum += r
        self.reward_sq_sum += r * r

    def mean(self, kind: PosteriorKind) -> float:
        """Posterior mean: success probability (beta) or expected reward (gaussian)."""
        if kind == "beta":
            return self.alpha / (self.alpha + self.beta)
        # Normal prior N(0.5, 0.25) worth one observation, updated with the observed rewards.
        return (0.5 + self.reward_sum) / (1 + self.observations)

    def sample(self, kind: PosteriorKind, rng: random.Random) -> float:
        """One draw from the posterior."""
        if kind == "beta":
            return rng.betavariate(self.alpha, self.beta)
        n = self.observations
        variance = 0.25
        if n >= 2:
            mean_r = self.reward_sum / n
            variance = max(0.01, (self.reward_sq_sum - n * mean_r * mean_r) / (n - 1))
        return rng.gauss(self.mean(kind), math.sqrt(variance / (1 + n)))

    def as_dict(self, kind: PosteriorKind) -> dict[str, float]:
        """JSON-ready posterior summary (with the reward moments a remote sampler needs)."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "pulls": float(self.pulls),
            "observations": float(self.observations),
            "mean_reward": self.reward_sum / self.observations if self.observations else 0.0,
            "posterior_mean": self.mean(kind),
            "reward_sum": self.reward_sum,
            "reward_sq_sum": self.reward_sq_sum,
        }


def choose(arms: Mapping[str, Arm], names: Sequence[str], kind: PosteriorKind, rng: random.Random) -> str:
    """Thompson sampling: the variant whose posterior draw is largest (unseen arms use the prior)."""
    draws = {name: (arms[name] if name in arms else Arm()).sample(kind, rng) for name in names}
    return max(names, key=lambda name: draws[name])
