"""Shared bits of the RL unit tests: tiny configs and an in-memory reporter."""

from __future__ import annotations

import threading
from typing import Any

#: Per algorithm: a tiny budget that still exercises rollouts, training steps and checkpoints.
TINY: dict[str, dict[str, Any]] = {
    "ppo": {
        "environment": "CartPole-v1",
        "total_timesteps": 1024,
        "hyperparameters": {"n_steps": 256, "batch_size": 64, "n_epochs": 2},
    },
    "a2c": {"environment": "CartPole-v1", "total_timesteps": 1000, "hyperparameters": {}},
    "dqn": {"environment": "CartPole-v1", "total_timesteps": 1000, "hyperparameters": {"learning_starts": 200}},
    "sac": {
        "environment": "Pendulum-v1",
        "total_timesteps": 300,
        "hyperparameters": {"learning_starts": 100, "batch_size": 64},
    },
    "td3": {
        "environment": "Pendulum-v1",
        "total_timesteps": 300,
        "hyperparameters": {"learning_starts": 100, "batch_size": 64},
    },
}


def tiny_config(algorithm: str, **overrides: Any) -> dict[str, Any]:
    """A valid config of ``algorithm`` with a budget of a few hundred steps."""
    config = {
        "algorithm": algorithm,
        **TINY[algorithm],
        "seed": 7,
        "checkpoint_freq": 250,
        "evaluation": {"n_episodes": 2},
    }
    config.update(overrides)
    return config


class ListReporter:
    """Collects updates; a stop can be requested from the test."""

    def __init__(self, stop_after_timesteps: int | None = None) -> None:
        self.updates: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.stop_after_timesteps = stop_after_timesteps

    def report(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        if self.stop_after_timesteps is not None and update.get("timesteps", 0) >= self.stop_after_timesteps:
            self.stop.set()

    def stop_requested(self) -> bool:
        return self.stop.is_set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [u for u in self.updates if u["type"] == kind]
