"""Request bodies and public (response) shapes of the RL endpoints.

``POST /api/v2/rl/experiments`` accepts two shapes, both validated field by field:

* flat: ``{"name", "algorithm", "environment", "total_timesteps", "hyperparameters", ...}``;
* the spec's ``rl_experiments`` row: ``{"name", "algorithm", "config": {"environment", ...},
  "agent_id"}``, where ``config`` holds the same fields as the flat shape (errors name
  ``config.<field>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from agentlightning.rl.auto.schemas import AgentExperimentCreate
from agentlightning.rl.config import ExperimentConfig
from agentlightning.validation import DbId, JsonObject, Text
from agentlightning.vocabulary import AGENT_ALGORITHMS, ExperimentKind, ExperimentStatus

__all__ = [
    "AlgorithmPublic",
    "CheckpointPublic",
    "EnvironmentCatalog",
    "EnvironmentCreate",
    "EnvironmentPublic",
    "EvaluationParams",
    "EvaluationResult",
    "ExperimentCreate",
    "ExperimentPage",
    "ExperimentPublic",
    "ExperimentRequest",
    "ExperimentRowConfig",
    "ExperimentRowCreate",
    "MetricHistory",
    "MetricPoint",
]

_NAME = Field(..., min_length=1, max_length=255, pattern=r"^[\w.\- ]+$")
_AGENT_ID = Field(None, description="the agent this experiment improves, if any")


class ExperimentRowConfig(ExperimentConfig):
    """The ``config`` object of the spec-row shape: the flat shape's fields, ``algorithm`` optional."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str | None = Field(None, description="if given, must equal the top-level algorithm")  # type: ignore[assignment]


class ExperimentRowCreate(BaseModel):
    """The spec's ``rl_experiments`` row as a request: name, algorithm, config, optional agent."""

    model_config = ConfigDict(extra="forbid")

    name: str = _NAME
    algorithm: Text = Field(..., min_length=1, max_length=50)
    config: ExperimentRowConfig
    agent_id: DbId | None = _AGENT_ID


class ExperimentCreate(ExperimentConfig):
    """Body of ``POST /api/v2/rl/experiments``: a unique name plus the experiment config.

    Also accepts the spec-row shape (:class:`ExperimentRowCreate`); it is validated as such and
    then flattened, so both shapes reach the service as this model.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": (
                "Flat: name, algorithm, environment, total_timesteps, ... at the top level. "
                "Also accepted: the spec's row shape {name, algorithm, config: {environment, "
                "total_timesteps, ...}, agent_id}."
            )
        },
    )

    name: str = _NAME
    agent_id: DbId | None = _AGENT_ID

    @model_validator(mode="wrap")
    @classmethod
    def _accept_row_shape(cls, data: Any, handler: Any) -> Any:
        if not (isinstance(data, dict) and "config" in data):
            return handler(data)
        row = ExperimentRowCreate.model_validate(data)  # errors carry config.<field>
        inner = row.config.model_dump(exclude_unset=True)
        nested = inner.pop("algorithm", None)
        if nested is not None and nested.lower() != row.algorithm.lower():
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "algorithm_mismatch",
                            "config.algorithm {inner!r} differs from algorithm {outer!r}",
                            {"inner": nested, "outer": row.algorithm},
                        ),
                        loc=("config", "algorithm"),
                        input=nested,
                    )
                ],
            )
        return handler({**inner, "name": row.name, "algorithm": row.algorithm, "agent_id": row.agent_id})

    def experiment_config(self) -> ExperimentConfig:
        """The config part (what is stored in the ``config`` column)."""
        return ExperimentConfig.model_validate(self.model_dump(exclude={"name", "agent_id", "custom_env"}))


class ExperimentRequest(RootModel[ExperimentCreate | AgentExperimentCreate]):
    """Body of ``POST /api/v2/rl/experiments``: a classic experiment, or an agent optimisation.

    ``algorithm`` picks the shape: ``apo``, ``bandit`` and ``grpo`` are agent optimisations
    (:class:`~agentlightning.rl.auto.schemas.AgentExperimentCreate`, ``agent_id`` required), every
    other name a classic experiment (:class:`ExperimentCreate`); errors name the fields of that shape.
    """

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, dict) and str(data.get("algorithm", "")).lower() in AGENT_ALGORITHMS:
            body = {**data, "algorithm": str(data["algorithm"]).lower()}
            return cls.model_construct(root=AgentExperimentCreate.model_validate(body))
        if isinstance(data, (ExperimentCreate, AgentExperimentCreate)):
            return cls.model_construct(root=data)
        return cls.model_construct(root=ExperimentCreate.model_validate(data))


class EvaluationParams(BaseModel):
    """Body of ``POST /api/v2/rl/experiments/{id}/evaluate``."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Text = Field("latest", max_length=64, description="'latest', 'final' or a checkpoint's timesteps")
    n_episodes: int = Field(10, ge=1, le=200)
    deterministic: bool = True
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class EnvironmentCreate(BaseModel):
    """Body of ``POST /api/v2/rl/environments``: a Gymnasium id bound to an allow-listed class."""

    model_config = ConfigDict(extra="forbid")

    env_id: Text = Field(..., min_length=1, max_length=255)
    entry_point: Text = Field(..., min_length=3, max_length=500, description="'package.module:ClassName'")
    kwargs: JsonObject = Field(default_factory=dict)
    max_episode_steps: int | None = Field(None, ge=1, le=10_000_000)
    description: Text | None = Field(None, max_length=2000)


# --- responses -----------------------------------------------------------------------------------


class CheckpointPublic(BaseModel):
    """A saved model of an experiment (download it by ``timesteps``, ``latest`` or ``final``)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="the file name (server paths are never shown)")
    timesteps: int
    final: bool = False
    size_bytes: int | None = None
    created_at: datetime | None = None


class ExperimentPublic(BaseModel):
    """An experiment as the API returns it."""

    id: int
    name: str
    algorithm: str
    kind: ExperimentKind = Field(description="'classic' (SB3 on Gymnasium) or 'agent' (apo, bandit, grpo on an agent)")
    status: ExperimentStatus
    agent_id: int | None = None
    config: dict[str, Any] = Field(description="the validated configuration it trains with")
    backend: str | None = None
    metrics: dict[str, Any] = Field(description="latest progress (timesteps, ep_rew_mean, fps, ...) and evaluations")
    progress: float = Field(ge=0.0, le=1.0)
    checkpoints: list[CheckpointPublic]
    error: str | None = None
    stop_requested: bool
    attempts: int
    created_by: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ExperimentPage(BaseModel):
    """A page of experiments, newest first."""

    items: list[ExperimentPublic]
    total: int
    limit: int
    offset: int


class MetricPoint(BaseModel):
    """One streamed update: training progress or an evaluation (its measures as further fields)."""

    model_config = ConfigDict(extra="allow")

    id: int
    kind: str = Field(description="'progress' or 'evaluation'")
    timesteps: int
    created_at: datetime | None = None
    ep_rew_mean: float | None = None
    mean_reward: float | None = None


class MetricHistory(BaseModel):
    """Metric points in order; poll with ``after_id=next_after_id``."""

    items: list[MetricPoint]
    next_after_id: int


class EvaluationResult(BaseModel):
    """The outcome of evaluating a checkpoint."""

    model_config = ConfigDict(extra="allow")

    experiment_id: int
    timesteps: int
    checkpoint: str
    mean_reward: float
    std_reward: float
    min_reward: float | None = None
    max_reward: float | None = None
    mean_ep_length: float | None = None
    n_episodes: int
    deterministic: bool


class AlgorithmPublic(BaseModel):
    """A supported algorithm."""

    name: str
    action_spaces: list[str]
    off_policy: bool


class EnvironmentPublic(BaseModel):  # type: ignore[no-redef]  # pydantic plugin: extra="allow" adds **kwargs
    """A registered custom environment."""

    model_config = ConfigDict(extra="allow")

    env_id: str
    entry_point: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    max_episode_steps: int | None = None
    description: str | None = None
    observation_space: str | None = None
    action_space: str | None = None


class EnvironmentCatalog(BaseModel):
    """What experiments can train on."""

    custom: list[EnvironmentPublic]
    builtin: list[str]
    allowed_modules: list[str]
