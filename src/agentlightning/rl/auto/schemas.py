"""Request bodies and public shapes of Auto-RL (policies, triggers, rollbacks, status)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentlightning.validation import DbId, JsonObject, Text
from agentlightning.vocabulary import AgentAlgorithm, AutoRLChange, AutoRLOutcome, AutoRLReason

__all__ = [
    "AgentExperimentCreate",
    "AutoRLAgentStatus",
    "AutoRLStatus",
    "PolicyPublic",
    "PolicyUpdate",
    "PromotionPublic",
    "RollbackRequest",
    "TriggerPublic",
    "TriggerRequest",
]

_NAME = Field(..., min_length=1, max_length=255, pattern=r"^[\w.\- ]+$")


class AgentTaskIn(BaseModel):
    """A verifiable task given inline to an agent-optimisation experiment (instead of the suite)."""

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(..., min_length=1, max_length=64)
    prompt: Text = Field(..., min_length=1, max_length=20_000)
    verifier: JsonObject
    task_type: Text = Field("default", max_length=50)
    context: JsonObject = Field(default_factory=dict)


class AgentExperimentConfig(BaseModel):
    """What an agent-optimisation run may use (all optional; the agent's policy fills the rest)."""

    model_config = ConfigDict(extra="forbid")

    max_evaluations: int | None = Field(None, ge=1, le=1_000_000, description="agent runs the optimiser may make")
    max_wall_seconds: int | None = Field(None, ge=10, le=7 * 24 * 3600)
    alpha: float | None = Field(None, gt=0.0, lt=1.0, description="significance level of the promotion gate")
    promote: bool = Field(True, description="promote the best candidate when the gate lets it through")
    train_tasks: int | None = Field(None, ge=1, le=1000, description="suite train tasks to optimise on")
    heldout_tasks: int | None = Field(None, ge=1, le=1000, description="suite held-out tasks the gate compares on")
    task_types: list[Text] | None = Field(None, max_length=20)
    suite: Text = Field("builtin", max_length=64)
    #: Inline tasks (both lists, or neither): used instead of the suite's.
    train: list[AgentTaskIn] | None = Field(None, max_length=1000)
    heldout: list[AgentTaskIn] | None = Field(None, max_length=1000)
    #: Algorithm settings handed to the optimiser as they are (``rounds``, ``beam_width``, ``variants`` ...).
    options: JsonObject = Field(default_factory=dict)


class AgentExperimentCreate(BaseModel):
    """Body of ``POST /api/v2/rl/experiments`` for an agent optimiser (``apo | bandit | grpo``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = _NAME
    algorithm: AgentAlgorithm
    agent_id: DbId
    config: AgentExperimentConfig = Field(default_factory=AgentExperimentConfig)


class PolicyUpdate(BaseModel):
    """A partial update of an agent's Auto-RL policy; an explicit null returns a field to the system default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    window: int | None = Field(None, ge=1, le=10_000)
    min_samples: int | None = Field(None, ge=1, le=100_000)
    success_threshold: float | None = Field(None, ge=0.0, le=1.0)
    cooldown_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    algorithm: AgentAlgorithm | None = None
    max_evaluations: int | None = Field(None, ge=1, le=1_000_000)
    max_wall_seconds: int | None = Field(None, ge=10, le=7 * 24 * 3600)
    alpha: float | None = Field(None, gt=0.0, lt=1.0)
    options: JsonObject | None = None


class PolicyPublic(BaseModel):
    """An agent's effective Auto-RL policy and which fields it overrides."""

    agent_id: int
    enabled: bool
    window: int
    min_samples: int
    success_threshold: float
    cooldown_minutes: int
    algorithm: str
    max_evaluations: int
    max_wall_seconds: int
    alpha: float
    train_tasks: int
    heldout_tasks: int
    options: dict[str, Any] = Field(default_factory=dict)
    overrides: list[str] = Field(default_factory=list, description="fields set for this agent (others: system default)")
    updated_by: str | None = None
    updated_at: datetime | None = None


class TriggerRequest(BaseModel):
    """Body of ``POST /api/v2/rl/auto-trigger``."""

    model_config = ConfigDict(extra="forbid")

    agent_id: DbId
    algorithm: AgentAlgorithm | None = None


class RollbackRequest(BaseModel):
    """Body of ``POST /api/v2/rl/auto-rollback``."""

    model_config = ConfigDict(extra="forbid")

    agent_id: DbId
    comment: Text | None = Field(None, max_length=2000)


class TriggerPublic(BaseModel):
    """One optimisation Auto-RL started."""

    id: int
    agent_id: int | None
    experiment_id: int | None
    reason: AutoRLReason
    algorithm: str
    outcome: AutoRLOutcome
    n: int
    success_rate: float | None = None
    mean_reward: float | None = None
    triggered_by: str | None = None
    decision: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    finished_at: datetime | None = None


class PromotionPublic(BaseModel):
    """A promotion or rollback of an agent's resources."""

    id: int
    agent_id: int
    kind: AutoRLChange
    experiment_id: int | None = None
    trigger_id: int | None = None
    before: dict[str, Any]
    after: dict[str, Any]
    version_before: int
    version_after: int
    incumbent_score: float | None = None
    candidate_score: float | None = None
    p_value: float | None = None
    n_heldout: int | None = None
    gain_pp: float | None = None
    rolled_back_at: datetime | None = None
    created_by: str | None = None
    comment: str | None = None
    created_at: datetime | None = None


class AutoRLAgentStatus(BaseModel):
    """One agent as Auto-RL sees it."""

    agent_id: int
    name: str
    enabled: bool
    resources_version: int
    n: int = Field(description="finished rollouts in the window")
    success_rate: float | None = None
    mean_reward: float | None = None
    success_threshold: float
    min_samples: int
    window: int
    triggers: int
    running: int
    finished: int
    promotions: int
    rollbacks: int
    last_trigger_at: datetime | None = None
    gain_pp: float | None = Field(None, description="held-out success gain of the promotion in force, in points")


class AutoRLStatus(BaseModel):
    """``GET /api/v2/rl/auto-status``: per agent and overall."""

    enabled: bool
    monitor: dict[str, Any]
    triggers: int
    running: int
    finished: int
    promotions: int
    rollbacks: int
    success_rate: float | None = Field(None, description="Auto-RL's own success: promoted / triggered")
    agents: list[AutoRLAgentStatus]
    recent_triggers: list[TriggerPublic]
    recent_promotions: list[PromotionPublic]
