"""What the platform's API returns to the SDK, as small pydantic models.

These mirror the server's public shapes without importing them (the SDK installs without the
server); unknown fields are kept (``extra="allow"``) so a newer server never breaks an older SDK.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AgentInfo(_Open):
    """An agent registered on the platform."""

    id: int
    name: str
    type: str
    status: str | None = None
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    config_version: int | None = None


class AgentResources(_Open):
    """An agent's currently promoted resources (``GET /api/v2/agents/{id}/resources``): what
    ``enable_rl_training()`` applies to the wrapped calls. ``None`` fields leave the call as is."""

    agent_id: int
    version: int = 1
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    tools: list[Any] | None = None
    adapter: str | None = None
    variant: str | None = None


class BanditVariant(_Open):
    """One declared variant of an agent's bandit and the resources it overrides (``None``: the
    agent's own)."""

    name: str
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    tools: list[str] | None = None


class BanditArmInfo(_Open):
    """The posterior of one (task type, variant) arm, as the platform has learned it."""

    task_type: str
    variant: str
    alpha: float = 1.0
    beta: float = 1.0
    pulls: int = 0
    observations: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    posterior_mean: float | None = None


class BanditState(_Open):
    """An agent's online bandit (``GET /api/v2/agents/{id}/bandit``): whether it runs, its posterior
    kind, its variants with their overrides (``definitions``) and its arms."""

    agent_id: int
    enabled: bool = False
    posterior: str = "beta"
    variants: list[str] = Field(default_factory=list)
    definitions: list[BanditVariant] = Field(default_factory=list)
    arms: list[BanditArmInfo] = Field(default_factory=list)


class TaskInfo(_Open):
    """A task assigned to an agent."""

    id: int
    status: str
    agent_id: int | None = None
    task: str | None = None
    result: Any = None
    error: str | None = None


class IngestResult(_Open):
    """What ``POST /api/v2/rollouts`` stored."""

    ids: list[str] = Field(default_factory=list)


class RewardInfo(_Open):
    """A stored reward."""

    value: float
    rollout_id: str | None = None
    span_id: str | None = None
    source: str | None = None


class RolloutInfo(_Open):
    """A rollout as the platform reports it (with ``spans`` and ``rewards`` when fetched alone)."""

    id: str
    agent_id: int | None = None
    source: str | None = None
    status: str | None = None
    reward: float | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    spans: list[dict[str, Any]] = Field(default_factory=list)
    rewards: list[dict[str, Any]] = Field(default_factory=list)


class PlatformError(Exception):
    """The platform answered an error (``status`` and the envelope's ``code``, ``message``,
    ``details``), or could not be reached (``status`` 0, ``code`` ``UNREACHABLE``)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (unreachable, timeout, 5xx, 408, 429)."""
        return self.status in (0, 408, 429) or self.status >= 500
