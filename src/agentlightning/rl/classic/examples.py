"""Small example environments, shipped so custom-environment registration can be tried and tested.

Register one with ``RL_ENV_ALLOWED_MODULES=agentlightning.rl.classic.examples`` and
``POST /api/v2/rl/environments {"env_id": "Corridor-v0",
"entry_point": "agentlightning.rl.classic.examples:CorridorEnv"}``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CorridorEnv(gym.Env[np.ndarray, np.int64]):
    """Walk right along a corridor of ``length`` cells to the goal.

    Observation: the normalised position in ``[0, 1]``. Actions: 0 = left, 1 = right.
    Reward: +1 at the goal, -0.01 per step otherwise. An optimal policy scores ``1 - 0.01 * (length - 2)``.
    """

    metadata = {"render_modes": []}

    def __init__(self, length: int = 8) -> None:
        if length < 2:
            raise ValueError("length must be at least 2")
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._pos = 0

    def _obs(self) -> np.ndarray:
        return np.array([self._pos / (self.length - 1)], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos = 0
        return self._obs(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._pos = min(self.length - 1, max(0, self._pos + (1 if int(action) == 1 else -1)))
        done = self._pos == self.length - 1
        return self._obs(), (1.0 if done else -0.01), done, False, {}
