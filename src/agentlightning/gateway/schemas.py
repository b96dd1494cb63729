"""Request and response models of the OpenAI-compatible gateway and of its admin endpoints.

The chat request is validated only as far as the gateway itself reads it (model, messages,
streaming, tools, sampling bounds); every other OpenAI parameter passes through to the upstream
unchanged, so new client options keep working without a gateway release.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from limits import parse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentlightning.validation import DB_INT_MAX, Text

#: Client-chosen rollout ids (``X-Rollout-Id``), as the rollouts contract allows them.
ROLLOUT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ModelName = Annotated[Text, Field(min_length=1, max_length=256)]
BudgetWindow = Literal["minute", "hour", "day", "month"]


class ChatCompletionIn(BaseModel):
    """The fields of ``POST /v1/chat/completions`` the gateway reads; the rest pass through."""

    model_config = ConfigDict(extra="allow")

    model: ModelName
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=4096)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=256)
    tool_choice: Any = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    n: int | None = Field(default=None, ge=1, le=16)

    @field_validator("messages")
    @classmethod
    def _roles(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, message in enumerate(messages):
            role = message.get("role")
            if not isinstance(role, str) or role not in {"system", "developer", "user", "assistant", "tool"}:
                raise ValueError(f"messages[{index}].role must be system, developer, user, assistant or tool")
        return messages


class ModelPublic(BaseModel):
    """One entry of ``GET /v1/models`` (OpenAI's model object)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``: the models this caller may use."""

    object: Literal["list"] = "list"
    data: list[ModelPublic]


class ChatCompletionOut(BaseModel):
    """OpenAI's ``chat.completion`` object (documented shape; the upstream's body is passed on)."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None


class OpenAIError(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """How every ``/v1`` error answers: ``{"error": {"message", "type", "param", "code"}}``."""

    error: OpenAIError


class RolloutRewardIn(BaseModel):
    """``POST /v1/rollouts/{id}/reward``: a reward for a rollout (or one of its spans)."""

    model_config = ConfigDict(extra="forbid")

    reward: float = Field(ge=-1_000_000, le=1_000_000)
    span_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    comment: Annotated[Text, Field(max_length=4000)] | None = None

    @field_validator("reward")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("reward must be a finite number")
        return value


class RolloutRewardOut(BaseModel):
    """The stored reward, as ``/v1`` answers it."""

    model_config = ConfigDict(extra="allow")

    object: Literal["rollout.reward"] = "rollout.reward"
    rollout_id: str
    reward: float
    span_id: str | None = None
    comment: str | None = None


class GatewayPolicyIn(BaseModel):
    """``PUT /api/v2/gateway/keys/{id}/policy``: a key's whole policy (null fields: the defaults)."""

    model_config = ConfigDict(extra="forbid")

    allowed_models: list[ModelName] | None = Field(
        default=None, max_length=500, description="Model names (or 'provider/*'); null: every model"
    )
    rate_limit: Annotated[Text, Field(max_length=64)] | None = Field(
        default=None, description="Requests, in limits notation: '60/minute'"
    )
    token_budget: int | None = Field(default=None, ge=0, le=DB_INT_MAX, description="Tokens per window; 0: unlimited")
    budget_window: BudgetWindow | None = None
    max_request_bytes: int | None = Field(default=None, ge=1024, le=100 * 1024 * 1024)
    upstream_timeout_seconds: float | None = Field(default=None, gt=0, le=3600)

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit ('60/minute', '1000/hour'): {exc}") from exc
        return value


class GatewayPolicyPublic(BaseModel):
    """A key's gateway policy: what is stored, what applies, and the budget used so far."""

    api_key_id: int
    allowed_models: list[str] | None
    rate_limit: str | None
    token_budget: int | None
    budget_window: BudgetWindow | None
    max_request_bytes: int | None
    upstream_timeout_seconds: float | None
    updated_at: datetime | None
    updated_by: str | None
    effective: dict[str, Any] = Field(description="The values in force, defaults filled in")
    tokens_used: int = Field(description="Tokens counted in the current budget window")
