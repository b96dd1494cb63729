"""A Gymnasium environment for the validation tests: it can announce its construction and then
spin forever in pure Python (holding the GIL of whatever process builds it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SpinEnv(gym.Env):  # type: ignore[misc]
    """A one-step environment; ``spin=True`` makes its constructor never return."""

    def __init__(self, signal: str | None = None, spin: bool = False) -> None:
        if signal:
            Path(signal).write_text("constructed")
        while spin:
            pass
        self.observation_space = spaces.Box(low=0.0, high=1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return np.zeros(1, dtype=np.float32), 1.0, True, False, {}
