"""Experiment configuration: the request model and its validation before anything starts.

:class:`ExperimentConfig` checks shapes and ranges (pydantic). :func:`validate_config` then checks
meaning, and collects every problem with the field it belongs to:

- the algorithm is known,
- the environment exists in Gymnasium's registry (or is a registered custom environment) and can
  be created with the given ``env_kwargs``,
- the algorithm can act in the environment's action space,
- each hyperparameter is accepted by the SB3 class and has the right kind of value,
- finally the model is built once on a single environment (a "dry run"), which catches what only
  SB3 can tell (e.g. a policy that does not fit the observation space).

The dry run imports torch, so callers on an event loop run this function in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentlightning.rl.classic import algorithms, envs

__all__ = [
    "ALGORITHM_NAMES",
    "ConfigError",
    "EvaluationSettings",
    "ExperimentConfig",
    "Problem",
    "ValidatedConfig",
    "validate_config",
]

ALGORITHM_NAMES = tuple(algorithms.ALGORITHMS)
Backend = Literal["auto", "subprocess", "ray"]


class EvaluationSettings(BaseModel):
    """How a trained policy is evaluated (at the end, and optionally during training)."""

    model_config = ConfigDict(extra="forbid")

    n_episodes: int = Field(10, ge=1, le=1000, description="episodes per evaluation")
    deterministic: bool = Field(True, description="use the policy's deterministic action")
    freq: int = Field(0, ge=0, description="evaluate every N timesteps during training; 0 = only at the end")


class ExperimentConfig(BaseModel):
    """What to train: algorithm, environment, hyperparameters and budget.

    Stored as the experiment's ``config`` column; everything a worker needs to run it.
    """

    model_config = ConfigDict(extra="forbid")

    algorithm: str = Field(..., description=f"one of {', '.join(ALGORITHM_NAMES)}")
    environment: str = Field(..., min_length=1, max_length=255, description="a Gymnasium environment id")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for gymnasium.make")
    policy: str = Field("MlpPolicy", description="SB3 policy alias: MlpPolicy, CnnPolicy or MultiInputPolicy")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="SB3 constructor arguments")
    total_timesteps: int = Field(..., ge=1, le=1_000_000_000)
    n_envs: int = Field(1, ge=1, le=256, description="parallel environments (a DummyVecEnv)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    checkpoint_freq: int = Field(10_000, ge=0, description="save a checkpoint every N timesteps; 0 = final only")
    backend: Backend = Field("auto", description="'auto' uses Ray when RAY_ADDRESS is set, else a child process")
    max_resumes: int = Field(3, ge=0, le=100, description="resumes from checkpoint allowed after a server restart")
    custom_env: dict[str, Any] | None = Field(
        None, description="set by the platform: the custom environment's registration, for workers"
    )


@dataclass(frozen=True)
class Problem:
    """One validation failure: the config field it concerns and what is wrong."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON form for error details."""
        return {"field": self.field, "message": self.message}


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` says which fields and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


@dataclass(frozen=True)
class ValidatedConfig:
    """A config that passed validation, with what validation learned about the environment."""

    config: ExperimentConfig
    spaces: dict[str, str] = field(default_factory=dict)


def _check_algorithm(cfg: ExperimentConfig, problems: list[Problem]) -> algorithms.AlgorithmInfo | None:
    try:
        return algorithms.get_algorithm(cfg.algorithm)
    except KeyError:
        problems.append(
            Problem("algorithm", f"unknown algorithm {cfg.algorithm!r}; supported: {', '.join(ALGORITHM_NAMES)}")
        )
        return None


def _check_environment(
    cfg: ExperimentConfig, custom_envs: Mapping[str, envs.CustomEnvSpec], problems: list[Problem]
) -> tuple[Any, Any] | None:
    custom = custom_envs.get(cfg.environment)
    if custom is not None:
        envs.ensure_registered(custom)
    try:
        return envs.env_spaces(cfg.environment, cfg.env_kwargs)
    except envs.EnvError as exc:
        problems.append(Problem("environment", str(exc)))
        return None


def _dry_run(cfg: ExperimentConfig, info: algorithms.AlgorithmInfo, kwargs: dict[str, Any]) -> str | None:
    """Build the model once on the configured vectorised environment; return SB3's complaint, if any."""
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(cfg.environment, n_envs=cfg.n_envs, env_kwargs=cfg.env_kwargs or None)
    try:
        info.load()(cfg.policy, env, device="cpu", verbose=0, **kwargs)
    except Exception as exc:  # noqa: BLE001 - SB3 raises many kinds; all mean "invalid config"
        return f"{type(exc).__name__}: {exc}"
    finally:
        env.close()
    return None


def validate_config(
    cfg: ExperimentConfig,
    custom_envs: Mapping[str, envs.CustomEnvSpec] | None = None,
    *,
    dry_run: bool = True,
) -> ValidatedConfig:
    """Check that ``cfg`` can be trained; raise :class:`ConfigError` listing every problem found.

    ``custom_envs`` maps ids of registered user environments to their specs; when the config's
    environment is one of them, the spec is embedded in the returned config (``custom_env``) so
    workers can register it. The algorithm name is normalised to lower case.
    """
    custom_envs = custom_envs or {}
    problems: list[Problem] = []
    cfg = cfg.model_copy(update={"algorithm": cfg.algorithm.lower()})
    info = _check_algorithm(cfg, problems)
    found = _check_environment(cfg, custom_envs, problems)
    if info is None:
        raise ConfigError(problems)

    if cfg.policy not in info.load().policy_aliases:
        aliases = ", ".join(info.load().policy_aliases)
        problems.append(Problem("policy", f"unknown policy {cfg.policy!r} for {info.name}; use one of {aliases}"))

    action_space = None
    described: dict[str, str] = {}
    if found is not None:
        observation_space, action_space = found
        described = envs.describe_spaces(observation_space, action_space)
        if not info.supports(action_space):
            problems.append(
                Problem(
                    "algorithm",
                    f"{info.name} cannot act in {cfg.environment}'s action space {action_space} "
                    f"({type(action_space).__name__}); {info.name} supports {', '.join(info.action_space_names)}",
                )
            )

    kwargs: dict[str, Any] = {}
    try:
        kwargs = algorithms.build_kwargs(info.name, cfg.hyperparameters, action_space)
    except algorithms.HyperparameterErrors as exc:
        problems.extend(Problem(f"hyperparameters.{e.name}", e.message) for e in exc.errors)

    if problems:
        raise ConfigError(problems)
    if dry_run:
        complaint = _dry_run(cfg, info, kwargs)
        if complaint:
            raise ConfigError([Problem("hyperparameters", f"{info.name} rejected the configuration: {complaint}")])

    # Only the platform may say which code a worker imports: whatever a caller put in
    # ``custom_env`` is replaced by the admin-registered spec (or nothing), never trusted.
    custom = custom_envs.get(cfg.environment)
    cfg = cfg.model_copy(update={"custom_env": custom.to_dict() if custom is not None else None})
    return ValidatedConfig(config=cfg, spaces=described)
