"""The Stable-Baselines3 algorithms the orchestrator can train, and their hyperparameters.

An algorithm is described by :class:`AlgorithmInfo`; its accepted hyperparameters are read from
the SB3 class signature (so a new SB3 release is picked up without edits here), minus the
arguments the platform sets itself and the ones that take Python classes. JSON-friendly encodings
are translated into SB3 objects by :func:`build_kwargs`:

- schedules: ``"lin_3e-4"`` for ``learning_rate`` / ``clip_range`` / ``clip_range_vf`` (linear
  decay to zero over training, as in RL Zoo),
- ``policy_kwargs.activation_fn``: ``"relu" | "tanh" | "elu" | "leaky_relu" | "gelu" | "silu"``,
- ``train_freq``: ``[4, "step"]`` becomes a tuple,
- ``action_noise``: ``{"type": "normal" | "ornstein_uhlenbeck", "sigma": 0.1}``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any

from gymnasium import spaces

__all__ = [
    "ALGORITHMS",
    "AlgorithmInfo",
    "HyperparameterError",
    "HyperparameterErrors",
    "build_kwargs",
    "get_algorithm",
    "hyperparameter_defaults",
]

_ON_POLICY_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)


@dataclass(frozen=True)
class AlgorithmInfo:
    """What the platform needs to know about one SB3 algorithm."""

    name: str
    class_path: str
    action_spaces: tuple[type[spaces.Space], ...]
    off_policy: bool

    def load(self) -> Any:
        """Import and return the SB3 algorithm class (imports torch on first use)."""
        module, _, attr = self.class_path.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    def supports(self, action_space: spaces.Space) -> bool:
        """Whether the algorithm can act in ``action_space``."""
        return isinstance(action_space, self.action_spaces)

    @property
    def action_space_names(self) -> list[str]:
        """Names of the supported action-space classes, for error messages."""
        return [cls.__name__ for cls in self.action_spaces]


ALGORITHMS: dict[str, AlgorithmInfo] = {
    "ppo": AlgorithmInfo("ppo", "stable_baselines3.PPO", _ON_POLICY_SPACES, off_policy=False),
    "a2c": AlgorithmInfo("a2c", "stable_baselines3.A2C", _ON_POLICY_SPACES, off_policy=False),
    "dqn": AlgorithmInfo("dqn", "stable_baselines3.DQN", (spaces.Discrete,), off_policy=True),
    "sac": AlgorithmInfo("sac", "stable_baselines3.SAC", (spaces.Box,), off_policy=True),
    "td3": AlgorithmInfo("td3", "stable_baselines3.TD3", (spaces.Box,), off_policy=True),
}

# Constructor arguments the platform sets itself.
_RESERVED = {"self", "policy", "env", "verbose", "seed", "device", "_init_setup_model", "tensorboard_log"}
# Arguments that take Python classes: not expressible in a JSON config.
_NOT_SETTABLE = {"replay_buffer_class", "replay_buffer_kwargs", "rollout_buffer_class", "rollout_buffer_kwargs"}
_SCHEDULES = {"learning_rate", "clip_range", "clip_range_vf"}
_ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
}
_POLICY_KWARGS = {
    "net_arch",
    "activation_fn",
    "ortho_init",
    "log_std_init",
    "n_critics",
    "share_features_extractor",
    "normalize_images",
}


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or has a value of the wrong kind."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class HyperparameterErrors(ValueError):
    """Every :class:`HyperparameterError` found in one set of hyperparameters."""

    def __init__(self, errors: list[HyperparameterError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def get_algorithm(name: str) -> AlgorithmInfo:
    """Return the :class:`AlgorithmInfo` for ``name`` (case-insensitive) or raise ``KeyError``."""
    return ALGORITHMS[name.lower()]


@cache
def hyperparameter_defaults(algorithm: str) -> dict[str, Any]:
    """The hyperparameters ``algorithm`` accepts, with the SB3 default of each."""
    cls = get_algorithm(algorithm).load()
    params = inspect.signature(cls.__init__).parameters
    return {
        name: (None if p.default is inspect.Parameter.empty else p.default)
        for name, p in params.items()
        if name not in _RESERVED and name not in _NOT_SETTABLE and p.kind is p.POSITIONAL_OR_KEYWORD
    }


def _parse_schedule(name: str, value: Any) -> Any:
    if isinstance(value, str):
        prefix, _, number = value.partition("_")
        if prefix != "lin":
            raise HyperparameterError(name, f"{name}: schedule must look like 'lin_0.0003', got {value!r}")
        try:
            start = float(number)
        except ValueError:
            raise HyperparameterError(name, f"{name}: cannot read a number in {value!r}") from None
        from stable_baselines3.common.utils import LinearSchedule

        return LinearSchedule(start, 0.0, 1.0)
    return value


def _check_kind(name: str, value: Any, default: Any) -> None:
    """Reject values whose JSON kind cannot match the SB3 default's kind."""
    if default is None or isinstance(value, str) and name in _SCHEDULES:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        kind = "a boolean"
    elif isinstance(default, int):
        ok = (
            isinstance(value, int) and not isinstance(value, bool) or (name == "train_freq" and isinstance(value, list))
        )
        kind = "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        kind = "a number"
    elif isinstance(default, str):
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        kind = "a string or number"
    else:
        return
    if not ok:
        raise HyperparameterError(name, f"{name} must be {kind}, got {value!r}")


def _policy_kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HyperparameterError("policy_kwargs", "policy_kwargs must be an object")
    unknown = set(value) - _POLICY_KWARGS
    if unknown:
        raise HyperparameterError(
            "policy_kwargs",
            f"policy_kwargs: unsupported key(s) {sorted(unknown)}; allowed: {sorted(_POLICY_KWARGS)}",
        )
    out = dict(value)
    if "activation_fn" in out:
        act = out["activation_fn"]
        if act not in _ACTIVATIONS:
            raise HyperparameterError(
                "policy_kwargs", f"policy_kwargs.activation_fn must be one of {sorted(_ACTIVATIONS)}, got {act!r}"
            )
        import torch.nn

        out["activation_fn"] = getattr(torch.nn, _ACTIVATIONS[act])
    return out


def _action_noise(value: Any, action_space: spaces.Space | None) -> Any:
    if not isinstance(value, dict) or value.get("type") not in {"normal", "ornstein_uhlenbeck"}:
        raise HyperparameterError(
            "action_noise", "action_noise must be {'type': 'normal' | 'ornstein_uhlenbeck', 'sigma': <float>}"
        )
    sigma = value.get("sigma", 0.1)
    if not isinstance(sigma, (int, float)) or sigma <= 0:
        raise HyperparameterError("action_noise", "action_noise.sigma must be a positive number")
    if action_space is None or not isinstance(action_space, spaces.Box):
        raise HyperparameterError("action_noise", "action_noise needs a continuous (Box) action space")
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    dim = int(np.prod(action_space.shape))
    noise_cls = NormalActionNoise if value["type"] == "normal" else OrnsteinUhlenbeckActionNoise
    return noise_cls(mean=np.zeros(dim), sigma=float(sigma) * np.ones(dim))


def build_kwargs(
    algorithm: str, hyperparameters: dict[str, Any], action_space: spaces.Space | None = None
) -> dict[str, Any]:
    """Check ``hyperparameters`` against the SB3 signature and convert them to constructor kwargs.

    Raises :class:`HyperparameterErrors` listing every offending hyperparameter.
    """
    accepted = hyperparameter_defaults(algorithm)
    kwargs: dict[str, Any] = {}
    errors: list[HyperparameterError] = []
    for name, value in hyperparameters.items():
        try:
            kwargs[name] = _convert(algorithm, accepted, name, value, action_space)
        except HyperparameterError as exc:
            errors.append(exc)
    if errors:
        raise HyperparameterErrors(errors)
    return kwargs


def _convert(algorithm: str, accepted: dict[str, Any], name: str, value: Any, action_space: spaces.Space | None) -> Any:
    if name not in accepted:
        import difflib

        if name in _NOT_SETTABLE:
            raise HyperparameterError(name, f"{name} takes a Python class and cannot be set in a config")
        if name in _RESERVED:
            raise HyperparameterError(name, f"{name} is set by the platform, not a hyperparameter")
        hint = difflib.get_close_matches(name, list(accepted), n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise HyperparameterError(name, f"unknown hyperparameter {name!r} for {algorithm}{suggestion}")
    _check_kind(name, value, accepted[name])
    if name in _SCHEDULES:
        return _parse_schedule(name, value)
    if name == "policy_kwargs":
        return _policy_kwargs(value)
    if name == "train_freq" and isinstance(value, list):
        return tuple(value)
    if name == "action_noise":
        return _action_noise(value, action_space)
    return value
