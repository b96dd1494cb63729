"""Public models of the agent optimisers (what the API shows of the online bandit)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agentlightning.rl.optimisers.bandit import PosteriorKind


class BanditArmPublic(BaseModel):
    """The posterior of one variant on one task type."""

    task_type: str
    variant: str
    alpha: float = Field(description="Beta posterior: 1 + successes (reward >= 0.5)")
    beta: float = Field(description="Beta posterior: 1 + failures")
    pulls: int = Field(description="tasks this variant was chosen for")
    observations: int = Field(description="rewards taken into the posterior")
    mean_reward: float
    posterior_mean: float = Field(description="success probability (beta) or expected reward (gaussian)")


class BanditStatePublic(BaseModel):
    """An agent's online bandit: its settings, declared variants and what it has learned."""

    agent_id: int
    enabled: bool
    posterior: PosteriorKind
    variants: list[str]
    arms: list[BanditArmPublic]
