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
from agentlightning.validation import JsonObject, Text

__all__ = [
    "ALGORITHM_NAMES",
    "ConfigError",
    "EvaluationSettings",
    "ExperimentConfig",
    "Problem",
    "ResourceLimits",
    "ValidatedConfig",
    "check_resources",
    "validate_config",
]

ALGORITHM_NAMES = tuple(algorithms.ALGORITHMS)
Backend = Literal["auto", "subprocess", "ray"]


class EvaluationSettings(BaseModel):
    """How a trained policy is evaluated (at the end, and optionally during training)."""

    model_config = ConfigDict(extra="forbid")

    n_episodes: int = Field(10, ge=1, le=1000, description="episodes per evaluation")
    deterministic: bool = Field(True, description="use the policy's deterministic action")
    freq: int = Field(
        0, ge=0, le=1_000_000_000, description="evaluate every N timesteps during training; 0 = only at the end"
    )


class ExperimentConfig(BaseModel):
    """What to train: algorithm, environment, hyperparameters and budget.

    Stored as the experiment's ``config`` column; everything a worker needs to run it.
    """

    model_config = ConfigDict(extra="forbid")

    algorithm: Text = Field(..., max_length=50, description=f"one of {', '.join(ALGORITHM_NAMES)}")
    environment: Text = Field(..., min_length=1, max_length=255, description="a Gymnasium environment id")
    env_kwargs: JsonObject = Field(default_factory=dict, description="keyword arguments for gymnasium.make")
    policy: Text = Field(
        "MlpPolicy", max_length=100, description="SB3 policy alias: MlpPolicy, CnnPolicy or MultiInputPolicy"
    )
    hyperparameters: JsonObject = Field(default_factory=dict, description="SB3 constructor arguments")
    total_timesteps: int = Field(..., ge=1, le=1_000_000_000)
    n_envs: int = Field(1, ge=1, le=256, description="parallel environments (a DummyVecEnv)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    checkpoint_freq: int = Field(
        10_000, ge=0, le=1_000_000_000, description="save a checkpoint every N timesteps; 0 = final only"
    )
    backend: Backend = Field("auto", description="'auto' uses Ray when RAY_ADDRESS is set, else a child process")
    max_resumes: int = Field(3, ge=0, le=100, description="resumes from checkpoint allowed after a server restart")
    custom_env: JsonObject | None = Field(
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


@dataclass(frozen=True)
class ResourceLimits:
    """Caps on what one experiment may ask of the server (from the ``rl_max_*`` settings)."""

    max_total_timesteps: int = 50_000_000
    max_n_envs: int = 32
    max_net_layers: int = 8
    max_layer_width: int = 1024
    max_net_params: int = 4_000_000
    max_n_steps: int = 8192
    max_rollout_size: int = 65_536
    max_batch_size: int = 8192
    max_buffer_size: int = 2_000_000
    max_checkpoints: int = 10_000

    @classmethod
    def from_settings(cls, settings: Any) -> ResourceLimits:
        """The limits configured in :class:`~agentlightning.settings.Settings`."""
        return cls(**{name: getattr(settings, f"rl_{name}") for name in cls.__dataclass_fields__})


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _networks(net_arch: Any) -> dict[str, Any]:
    """SB3's ``net_arch`` forms: a list (shared / every network) or ``{"pi": [...], "vf"|"qf": [...]}``."""
    if isinstance(net_arch, dict):
        return {f"net_arch.{k}": v for k, v in net_arch.items()}
    return {"net_arch": net_arch}


def _check_network(policy_kwargs: Any, limits: ResourceLimits, problems: list[Problem]) -> None:
    if not isinstance(policy_kwargs, dict) or "net_arch" not in policy_kwargs:
        return
    prefix = "hyperparameters.policy_kwargs"
    total = 0
    for name, layers in _networks(policy_kwargs["net_arch"]).items():
        field_name = f"{prefix}.{name}"
        if not isinstance(layers, list) or any(_int(w) is None or w < 1 for w in layers):
            problems.append(Problem(field_name, "must be a list of positive layer widths"))
            return
        if len(layers) > limits.max_net_layers:
            problems.append(
                Problem(field_name, f"{len(layers)} layers; at most {limits.max_net_layers} are allowed per network")
            )
        widest = max(layers, default=0)
        if widest > limits.max_layer_width:
            problems.append(
                Problem(field_name, f"a layer of {widest} units; at most {limits.max_layer_width} are allowed")
            )
        # Weights between hidden layers (inputs and outputs are small next to them).
        total += sum(a * b for a, b in zip(layers, layers[1:])) + sum(layers)
    n_critics = _int(policy_kwargs.get("n_critics")) or 1
    if total * max(1, min(n_critics, 100)) > limits.max_net_params:
        problems.append(
            Problem(
                f"{prefix}.net_arch",
                f"the networks hold about {total * n_critics:,} weights; at most {limits.max_net_params:,} are allowed",
            )
        )
    if n_critics > 10:
        problems.append(Problem(f"{prefix}.n_critics", "at most 10 critics are allowed"))


def check_resources(cfg: ExperimentConfig, limits: ResourceLimits) -> list[Problem]:
    """Every field of ``cfg`` that asks for more than ``limits`` allow (cheap: builds nothing)."""
    problems: list[Problem] = []
    hp = cfg.hyperparameters
    if cfg.total_timesteps > limits.max_total_timesteps:
        problems.append(Problem("total_timesteps", f"at most {limits.max_total_timesteps:,} are allowed"))
    if cfg.n_envs > limits.max_n_envs:
        problems.append(Problem("n_envs", f"at most {limits.max_n_envs} parallel environments are allowed"))
    n_steps = _int(hp.get("n_steps"))
    if n_steps is not None:
        if n_steps > limits.max_n_steps:
            problems.append(Problem("hyperparameters.n_steps", f"at most {limits.max_n_steps} steps per rollout"))
        elif n_steps * cfg.n_envs > limits.max_rollout_size:
            problems.append(
                Problem(
                    "hyperparameters.n_steps",
                    f"n_steps x n_envs = {n_steps * cfg.n_envs:,}; at most {limits.max_rollout_size:,} are allowed",
                )
            )
    for name, cap in (("batch_size", limits.max_batch_size), ("buffer_size", limits.max_buffer_size)):
        value = _int(hp.get(name))
        if value is not None and value > cap:
            problems.append(Problem(f"hyperparameters.{name}", f"at most {cap:,} are allowed"))
    for name in ("n_epochs", "gradient_steps"):
        value = _int(hp.get(name))
        if value is not None and value > 1000:
            problems.append(Problem(f"hyperparameters.{name}", "at most 1,000 are allowed"))
    _check_network(hp.get("policy_kwargs"), limits, problems)
    for field_name, freq in (("checkpoint_freq", cfg.checkpoint_freq), ("evaluation.freq", cfg.evaluation.freq)):
        if freq > 0 and cfg.total_timesteps // freq > limits.max_checkpoints:
            problems.append(
                Problem(
                    field_name,
                    f"every {freq:,} timesteps is {cfg.total_timesteps // freq:,} times in this run; "
                    f"at most {limits.max_checkpoints:,} are allowed (raise {field_name})",
                )
            )
    return problems


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
    limits: ResourceLimits | None = None,
) -> ValidatedConfig:
    """Check that ``cfg`` can be trained; raise :class:`ConfigError` listing every problem found.

    ``custom_envs`` maps ids of registered user environments to their specs; when the config's
    environment is one of them, the spec is embedded in the returned config (``custom_env``) so
    workers can register it. The algorithm name is normalised to lower case.
    """
    custom_envs = custom_envs or {}
    resource_problems = check_resources(cfg, limits or ResourceLimits())
    if resource_problems:  # before anything is built: an oversized request costs nothing
        raise ConfigError(resource_problems)
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
