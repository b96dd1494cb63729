"""Gymnasium environment lookup and the registration of user environments.

Built-in environments come from Gymnasium's registry. A user environment is registered by
entry point (``"package.module:ClassName"``) under a Gymnasium id; the module must be inside one
of the allow-listed module prefixes an administrator configured (``RL_ENV_ALLOWED_MODULES``).
A :class:`CustomEnvSpec` is plain data, so it travels inside a training job and is registered
again in the child process or Ray worker that runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from gymnasium.envs.registration import parse_env_id

__all__ = [
    "CustomEnvSpec",
    "EnvError",
    "check_entry_point",
    "describe_spaces",
    "ensure_registered",
    "env_spaces",
    "list_builtin_envs",
    "make_env",
    "resolve",
]


class EnvError(ValueError):
    """An environment id cannot be resolved or an entry point is not allowed (message says why)."""


@dataclass(frozen=True)
class CustomEnvSpec:
    """A user environment: a Gymnasium id bound to an allow-listed ``module:Class`` entry point."""

    env_id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored in the experiment config and sent to workers."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomEnvSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            env_id=data["env_id"],
            entry_point=data["entry_point"],
            kwargs=dict(data.get("kwargs") or {}),
            max_episode_steps=data.get("max_episode_steps"),
        )


def _module_allowed(module: str, allowed: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed if prefix)


def check_entry_point(entry_point: str, allowed_modules: Sequence[str]) -> type[gym.Env]:
    """Validate ``module:Class`` against the allow-list, import it and check it is a ``gym.Env``.

    The allow-list is checked *before* anything is imported, so a rejected module never runs.
    """
    module, sep, attr = entry_point.partition(":")
    if not sep or not module or not attr:
        raise EnvError(f"entry point must look like 'package.module:ClassName', got {entry_point!r}")
    if not _module_allowed(module, allowed_modules):
        allowed = ", ".join(allowed_modules) or "none configured"
        raise EnvError(
            f"module {module!r} is not in the allow-list of environment modules ({allowed}); "
            "an administrator sets RL_ENV_ALLOWED_MODULES"
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise EnvError(f"cannot import {entry_point!r}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, gym.Env)):
        raise EnvError(f"{entry_point!r} is not a gymnasium.Env subclass")
    return obj


def ensure_registered(spec: CustomEnvSpec) -> None:
    """Register ``spec`` in this process's Gymnasium registry (idempotent; re-registers on change)."""
    existing = gym.registry.get(spec.env_id)
    if existing is not None:
        same = (
            existing.entry_point == spec.entry_point
            and dict(existing.kwargs) == spec.kwargs
            and existing.max_episode_steps == spec.max_episode_steps
        )
        if same:
            return
        del gym.registry[spec.env_id]
    gym.register(
        id=spec.env_id,
        entry_point=spec.entry_point,
        kwargs=dict(spec.kwargs),
        max_episode_steps=spec.max_episode_steps,
    )


def validate_env_id(env_id: str) -> None:
    """Check ``env_id`` has Gymnasium's id syntax (``[namespace/]Name[-vN]``)."""
    try:
        parse_env_id(env_id)
    except gym.error.Error as exc:
        raise EnvError(str(exc)) from exc


def resolve(env_id: str) -> gym.envs.registration.EnvSpec:
    """Return the registry entry for ``env_id``; the error carries Gymnasium's "did you mean"."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as exc:
        raise EnvError(f"unknown environment {env_id!r}: {exc}") from exc


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """Create one environment instance, turning any failure into :class:`EnvError`."""
    resolve(env_id)
    try:
        return gym.make(env_id, **(env_kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - user environments can raise anything
        raise EnvError(f"environment {env_id!r} cannot be created: {exc}") from exc


def env_spaces(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[spaces.Space, spaces.Space]:
    """Observation and action space of ``env_id`` (creates and closes one instance)."""
    env = make_env(env_id, env_kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def describe_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> dict[str, str]:
    """Short human-readable description of the spaces, for API responses."""
    return {"observation_space": str(observation_space), "action_space": str(action_space)}


def list_builtin_envs(prefix: str = "") -> list[str]:
    """Ids in the Gymnasium registry (optionally those starting with ``prefix``), sorted."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith(prefix))
