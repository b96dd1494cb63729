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
    reward_sum: float = Field(default=0.0, description="sum of the observed rewards (clipped to [0, 1])")
    reward_sq_sum: float = Field(default=0.0, description="sum of their squares (the gaussian posterior's variance)")


class BanditVariantPublic(BaseModel):
    """One declared variant and the resources it overrides (unset: the agent's own); what an
    SDK-wrapped agent applies when it draws this variant."""

    name: str
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    tools: list[str] | None = None


class BanditStatePublic(BaseModel):
    """An agent's online bandit: its settings, declared variants and what it has learned.

    It holds what ``GET /api/v2/agents/{ref}`` already shows any reader of the agent (its
    ``config.bandit`` and ``config.variants``) and per-arm aggregates of rewards; never a rollout,
    its owner or a reward's author."""

    agent_id: int
    enabled: bool
    posterior: PosteriorKind
    variants: list[str]
    definitions: list[BanditVariantPublic] = Field(
        default_factory=list, description="the variants with their overrides (the incumbent's are none)"
    )
    arms: list[BanditArmPublic]
