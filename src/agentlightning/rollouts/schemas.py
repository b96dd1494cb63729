"""Request bodies and public shapes of rollouts, spans and rewards (``/api/v2/rollouts``, feedback,
agent resources).  Sources and statuses come from :mod:`agentlightning.vocabulary`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agentlightning.validation import DB_INT_MAX, DbId, JsonLimits, JsonObject, Text, check_json, current_limits
from agentlightning.vocabulary import RewardSource, RolloutSource, RolloutStatus

#: A client-chosen rollout id; ``task-`` is reserved for the platform's own task rollouts.
ROLLOUT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
#: The prefix of the rollout of task ``N`` (``task-N``).
TASK_ROLLOUT_PREFIX = "task-"
#: A span id: what :class:`~agentlightning.agents.tracing.TraceRecorder` makes, or a client's own.
SPAN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,32}$"
MAX_SPANS_PER_ROLLOUT = 200
MAX_REWARDS_PER_ROLLOUT = 100
MAX_ROLLOUTS_PER_BATCH = 100
#: Rewards are finite and bounded (a verifier's score is in [0, 1]; SDK clients may use any scale).
REWARD_BOUND = 1e6

SpanKind = Literal["agent_run", "llm", "tool"]
SpanStatus = Literal["ok", "error"]


def task_rollout_id(task_id: int) -> str:
    """The id of task ``task_id``'s rollout."""
    return f"{TASK_ROLLOUT_PREFIX}{task_id}"


#: The largest encoded input or output of one span or rollout (a long conversation's messages);
#: the request body limit (``MAX_REQUEST_BODY_BYTES``) bounds a whole batch.
MAX_PAYLOAD_BYTES = 1_048_576


def _bounded_json(value: Any) -> Any:
    return check_json(value, JsonLimits(max_bytes=MAX_PAYLOAD_BYTES, max_depth=current_limits().max_depth))


#: Any JSON value (object, list, string, ...) of at most :data:`MAX_PAYLOAD_BYTES`, nested no
#: deeper than free-form JSON may be.
JsonValue = Annotated[Any, AfterValidator(_bounded_json)]
RolloutId = Annotated[str, Field(pattern=ROLLOUT_ID_PATTERN)]
SpanId = Annotated[str, Field(pattern=SPAN_ID_PATTERN)]
RewardValue = Annotated[float, Field(ge=-REWARD_BOUND, le=REWARD_BOUND, allow_inf_nan=False)]
TokenCount = Annotated[int, Field(ge=0, le=DB_INT_MAX)]


class SpanIn(BaseModel):
    """One step of a rollout as a client sends it: an LLM call, a tool call or the run itself.

    ``span_id`` identifies it: sending the same span again (a retried request) is a no-op.
    """

    model_config = ConfigDict(extra="forbid")

    span_id: SpanId
    trace_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = None
    parent_span_id: SpanId | None = None
    kind: SpanKind
    name: Text = Field(min_length=1, max_length=255)
    status: SpanStatus = "ok"
    input: JsonValue = Field(default=None, description="an LLM call: {'messages': [...]}; a tool: {'arguments': {...}}")
    output: JsonValue = Field(default=None, description="an LLM call: {'content': ..., 'tool_calls': [...]}")
    error: Text | None = Field(default=None, max_length=20_000)
    model: Text | None = Field(default=None, max_length=255)
    prompt_tokens: TokenCount | None = None
    completion_tokens: TokenCount | None = None
    latency_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)
    attributes: JsonObject = Field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None


class RewardIn(BaseModel):
    """A reward for a rollout, or for one of its spans (an intermediate reward)."""

    model_config = ConfigDict(extra="forbid")

    value: RewardValue
    span_id: SpanId | None = None
    name: Text | None = Field(default=None, max_length=255)
    comment: Text | None = Field(default=None, max_length=10_000)
    details: JsonObject = Field(default_factory=dict)


class RolloutIn(BaseModel):
    """One rollout of an ingest batch: created when its id is new, appended to otherwise."""

    model_config = ConfigDict(extra="forbid")

    id: RolloutId | None = Field(default=None, description="omit to have the server choose one")
    agent_id: DbId | None = None
    agent_name: Text | None = Field(default=None, min_length=1, max_length=255)
    source: Literal["sdk", "gateway", "workflow"] = "sdk"
    status: RolloutStatus | None = Field(
        default=None, description="omitted: 'completed' for a new rollout, unchanged for an existing one"
    )
    parent_id: RolloutId | None = None
    input: JsonValue = None
    output: JsonValue = None
    metadata: JsonObject = Field(default_factory=dict)
    spans: list[SpanIn] = Field(default_factory=list, max_length=MAX_SPANS_PER_ROLLOUT)
    rewards: list[RewardIn] = Field(default_factory=list, max_length=MAX_REWARDS_PER_ROLLOUT)

    @model_validator(mode="after")
    def _not_reserved(self) -> RolloutIn:
        if self.id is not None and self.id.startswith(TASK_ROLLOUT_PREFIX):
            raise ValueError(f"rollout ids starting with '{TASK_ROLLOUT_PREFIX}' are reserved for task runs")
        if self.agent_id is not None and self.agent_name is not None:
            raise ValueError("give 'agent_id' or 'agent_name', not both")
        return self


class RolloutBatchIn(BaseModel):
    """Body of ``POST /api/v2/rollouts``: up to 100 rollouts with their spans and rewards."""

    model_config = ConfigDict(extra="forbid")

    rollouts: list[RolloutIn] = Field(min_length=1, max_length=MAX_ROLLOUTS_PER_BATCH)


class IngestResult(BaseModel):
    """What an ingest batch did."""

    ids: list[str] = Field(description="the rollouts' ids, in the order sent")
    created: int = Field(description="rollouts that were new")
    spans_added: int = Field(description="spans stored (a span sent again is not counted)")
    rewards_added: int


class FeedbackIn(BaseModel):
    """Body of ``POST /api/v2/tasks/{id}/feedback``: a user's score of a task's answer."""

    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="0 = bad, 1 = good (0.5 or more succeeds)")
    comment: Text | None = Field(default=None, max_length=10_000)


class RolloutFilters(BaseModel):
    """Filters of a rollout listing (and of ``agentlightning rl export``)."""

    agent_id: int | None = None
    source: RolloutSource | None = None
    status: RolloutStatus | None = None
    task_id: int | None = None
    parent_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_reward: float | None = None
    max_reward: float | None = None
    #: Only rollouts that have a reward.
    rewarded: bool = False
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=50, ge=1, le=1000)


class RewardPublic(BaseModel):
    """A stored reward."""

    id: int
    rollout_id: str
    span_id: str | None = None
    value: float
    source: RewardSource
    name: str | None = None
    comment: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    created_by: str | None = None
    created_at: datetime | None = None


class RolloutPublic(BaseModel):
    """A rollout as the API returns it."""

    id: str
    agent_id: int | None = None
    task_id: int | None = None
    parent_id: str | None = None
    source: RolloutSource
    status: RolloutStatus
    owner: str | None = None
    input: Any = None
    output: Any = None
    reward: float | None = Field(default=None, description="the latest reward of the whole rollout")
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None


class SpanPublic(BaseModel):
    """One span: an agent run, an LLM call or a tool call (of a task run or an ingested rollout)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    kind: str
    name: str
    status: str
    input: Any = None
    output: Any = None
    error: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None


class RolloutSpanPublic(SpanPublic):
    """One span of a rollout."""

    rollout_id: str | None = None


class RolloutDetailPublic(RolloutPublic):
    """A rollout with its spans (start order) and rewards (oldest first)."""

    spans: list[RolloutSpanPublic] = Field(default_factory=list)
    rewards: list[RewardPublic] = Field(default_factory=list)


class RolloutPage(BaseModel):
    """A page of rollouts, newest first."""

    items: list[RolloutPublic]
    total: int
    page: int
    page_size: int


class AgentWindowStats(BaseModel):
    """An agent's last ``window`` finished rollouts: how many, how many succeeded, mean reward.

    A rollout succeeded when its reward is 0.5 or more, or, without a reward, when it completed.
    """

    agent_id: int
    window: int
    n: int
    success_rate: float | None = None
    mean_reward: float | None = None
    rewarded: int = Field(default=0, description="rollouts among them that have a reward")


class AgentResources(BaseModel):
    """What an agent currently runs with (its promoted resources): the runtime, the SDK and the
    gateway all read them here, so a promotion reaches all three."""

    agent_id: int
    version: int = Field(description="config.resources_version: bumped by each promotion")
    system_prompt: str
    model: str | None = None
    temperature: float
    tools: list[str] = Field(default_factory=list)
    adapter: Any = Field(default=None, description="a fine-tuned adapter (config.adapter), if any")
    variant: Any = Field(default=None, description="the promoted variant (config.variant), if any")
