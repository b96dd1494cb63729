"""Request bodies and public (response) shapes of the agent and task endpoints.

Requests are ``XCreate`` / ``XUpdate`` (validated by pydantic, unknown fields refused); what the
API returns is ``XPublic`` and friends, so ``/openapi.json`` documents every field. Statuses and
priorities come from :mod:`agentlightning.vocabulary`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentlightning.rl.optimisers.bandit import MAX_VARIANTS, BanditPolicy, Variant, check_unique_names
from agentlightning.rollouts.schemas import SpanPublic
from agentlightning.validation import DB_INT_MAX, DbId, JsonObject, Text, check_json, parse_db_id
from agentlightning.vocabulary import AgentStatus, TaskPriority, TaskStatus

#: Kept for callers that imported it from here; the vocabulary owns the values.
Priority = TaskPriority


class AgentConfigIn(BaseModel):
    """The known keys of an agent's ``config``; unknown keys are kept as they are."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        return check_json(data) if isinstance(data, dict) else data

    system_prompt: Text | None = Field(default=None, max_length=20_000)
    #: ``auto``, ``default``, ``local`` or a name from ``LLM_PROVIDERS`` (checked by the service).
    provider: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    model: Text | None = Field(default=None, max_length=255)
    #: The agent's own OpenAI-compatible upstream; needs ``api_key`` and passes the egress rules.
    base_url: Text | None = Field(default=None, max_length=1000)
    #: The key for ``base_url`` (write-only: the API shows it masked).
    api_key: Text | None = Field(default=None, max_length=1000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    max_steps: int | None = Field(default=None, ge=1, le=50)
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    memory_window: int | None = Field(default=None, ge=0, le=200)
    tools: list[Text] | None = Field(default=None, max_length=100)
    cache: bool | None = None
    #: Bumped by each promotion of new resources (``GET /api/v2/agents/{id}/resources``'s ``version``).
    resources_version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    #: Online variant selection per task (``{"enabled": true, "posterior": "beta"}``; see ``variants``).
    bandit: BanditPolicy | None = None
    #: Declared variants (name + prompt/model/temperature/tools overrides) the bandit chooses among.
    variants: list[Variant] | None = Field(default=None, max_length=MAX_VARIANTS)

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, value: list[Variant] | None) -> list[Variant] | None:
        if value:
            check_unique_names(value)
        return value


class AgentCreate(BaseModel):
    """Body of ``POST /api/v2/agents``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: Text | None = Field(default=None, min_length=1, max_length=100)
    description: Text | None = Field(default=None, max_length=10_000)
    template: Text | None = Field(default=None, max_length=100)
    config: AgentConfigIn = Field(default_factory=AgentConfigIn)
    status: Literal["active", "paused"] = Field(default="active", description="a new agent cannot start disabled")

    @model_validator(mode="after")
    def _type_or_template(self) -> AgentCreate:
        if self.type is None and self.template is None:
            raise ValueError("give a 'type' or a 'template'")
        if self.name.isdigit():
            raise ValueError("a name cannot be only digits (it would read as an id)")
        return self


class AgentUpdate(BaseModel):
    """Body of ``PUT /api/v2/agents/{id}``: any subset; ``config`` keys are merged (null removes)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: Text | None = Field(default=None, min_length=1, max_length=100)
    description: Text | None = Field(default=None, max_length=10_000)
    config: JsonObject | None = None
    status: AgentStatus | None = None

    @model_validator(mode="after")
    def _name_not_numeric(self) -> AgentUpdate:
        if self.name is not None and self.name.isdigit():
            raise ValueError("a name cannot be only digits (it would read as an id)")
        return self


class AssignRequest(BaseModel):
    """Body of ``POST /api/v2/agents/assign`` (the spec's fields plus an optional session)."""

    model_config = ConfigDict(extra="forbid")

    task: Text = Field(min_length=1, max_length=100_000)
    agent_type: Text | None = Field(
        default=None,
        max_length=100,
        description="an agent type (the least loaded active agent of it runs the task); when no agent has "
        "this type, the active agent of this name (e.g. 'general_assistant', whose type is 'assistant')",
    )
    agent_id: DbId | Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")] | None = None
    priority: TaskPriority = "medium"
    context: JsonObject = Field(default_factory=dict)
    session_id: Text | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _target(self) -> AssignRequest:
        if isinstance(self.agent_id, str) and self.agent_id.isdigit():
            number = parse_db_id(self.agent_id)
            if not number:
                raise ValueError(f"agent_id must be between 1 and {DB_INT_MAX}")
            self.agent_id = number
        if self.agent_type is None and self.agent_id is None:
            raise ValueError("give 'agent_type' or 'agent_id'")
        return self


# --- responses -----------------------------------------------------------------------------------


class AgentBase(BaseModel):
    """The fields an agent is registered with."""

    name: str
    type: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="system_prompt, provider, model, tools, ...")
    status: AgentStatus


class AgentPublic(AgentBase):
    """An agent as the API returns it."""

    id: int
    config_version: int = Field(description="incremented whenever what the agent does changes")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    performance_metrics: dict[str, Any] = Field(default_factory=dict)
    last_activity: datetime | None = None


class AgentPage(BaseModel):
    """A page of agents."""

    items: list[AgentPublic]
    total: int
    page: int
    page_size: int


class TaskCounts(BaseModel):
    """An agent's live and recent (24 h) task counts."""

    running: int = 0
    pending: int = 0
    completed_24h: int = 0
    failed_24h: int = 0
    success_rate: float | None = Field(default=None, description="completed / finished over the last 24 h")
    avg_execution_ms: float | None = None


class AgentRuntimeStatus(TaskCounts):
    """One agent's live status (``GET /api/v2/agents/{id}/status``, cached up to 5 minutes)."""

    agent_id: int
    name: str
    type: str
    status: AgentStatus
    config_version: int
    max_concurrency: int
    last_activity: datetime | None = None


class AgentDetail(AgentPublic):
    """An agent with its live status."""

    runtime: AgentRuntimeStatus


class AgentRestarted(AgentRuntimeStatus):
    """A restarted agent's status and the tasks whose stale leases were released."""

    released_tasks: list[int] = Field(default_factory=list)


class AgentDeleted(BaseModel):
    """What deleting an agent did."""

    id: int
    name: str
    deleted: bool = True
    cancelled_tasks: list[int] = Field(default_factory=list, description="its unfinished tasks, now cancelled")


class AgentSummary(TaskCounts):
    """One agent's line in the overview."""

    id: int
    name: str
    type: str
    status: AgentStatus


class QueueCounts(BaseModel):
    """Tasks per status across all agents."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class AgentOverview(BaseModel):
    """Every agent's state with queue and worker totals (``GET /api/v2/agents/status``)."""

    total_agents: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    queue: QueueCounts
    busy_workers: int
    agents: list[AgentSummary]


class AgentTemplatePublic(BaseModel):
    """A template to copy when creating an agent."""

    name: str
    type: str
    description: str
    config: dict[str, Any]


class ToolPublic(BaseModel):
    """A tool agents may be given."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments")
    permission: str
    timeout_s: float
    enabled: bool


class TaskPublic(BaseModel):
    """A task as the API returns it (``task_id`` duplicates ``id`` for the spec's clients)."""

    id: int
    task_id: int
    task_description: str
    agent_id: int | None = None
    agent_name: str | None = None
    agent_type: str | None = None
    status: TaskStatus
    priority: TaskPriority
    context: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = None
    result: Any = Field(default=None, description="the agent's answer (JSON) once completed")
    error_message: str | None = None
    attempts: int = 0
    max_attempts: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    execution_time_ms: int | None = None
    created_by: str | None = None


class TaskPage(BaseModel):
    """A page of tasks."""

    items: list[TaskPublic]
    total: int
    page: int
    page_size: int


class TaskTrace(BaseModel):
    """The spans of a task's runs, in start order."""

    task_id: int
    spans: list[SpanPublic]
