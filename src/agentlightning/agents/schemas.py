"""Request bodies of the agent and task endpoints (validated by pydantic)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentlightning.validation import DB_INT_MAX, DbId, JsonObject, Text, check_json, parse_db_id

Priority = Literal["low", "medium", "high", "critical"]


class AgentConfigIn(BaseModel):
    """The known keys of an agent's ``config``; unknown keys are kept as they are."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        return check_json(data) if isinstance(data, dict) else data

    system_prompt: Text | None = Field(default=None, max_length=20_000)
    provider: Literal["auto", "openai", "local"] | None = None
    model: Text | None = Field(default=None, max_length=255)
    base_url: Text | None = Field(default=None, max_length=1000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    max_steps: int | None = Field(default=None, ge=1, le=50)
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    memory_window: int | None = Field(default=None, ge=0, le=200)
    tools: list[Text] | None = Field(default=None, max_length=100)
    cache: bool | None = None


class AgentCreate(BaseModel):
    """Body of ``POST /api/v2/agents``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: Text | None = Field(default=None, min_length=1, max_length=100)
    description: Text | None = Field(default=None, max_length=10_000)
    template: Text | None = Field(default=None, max_length=100)
    config: AgentConfigIn = Field(default_factory=AgentConfigIn)
    status: Literal["active", "paused"] = "active"

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
    status: Literal["active", "paused", "disabled"] | None = None

    @model_validator(mode="after")
    def _name_not_numeric(self) -> AgentUpdate:
        if self.name is not None and self.name.isdigit():
            raise ValueError("a name cannot be only digits (it would read as an id)")
        return self


class AssignRequest(BaseModel):
    """Body of ``POST /api/v2/agents/assign`` (the spec's fields plus an optional session)."""

    model_config = ConfigDict(extra="forbid")

    task: Text = Field(min_length=1, max_length=100_000)
    agent_type: Text | None = Field(default=None, max_length=100)
    agent_id: DbId | Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")] | None = None
    priority: Priority = "medium"
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
