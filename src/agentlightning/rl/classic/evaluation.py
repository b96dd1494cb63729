"""Evaluate a saved SB3 model on its experiment's environment.

Used at the end of training and by ``POST /api/v2/rl/experiments/{id}/evaluate``; the backends
run it in a child process or Ray worker, never on the API event loop.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from agentlightning.rl.classic import algorithms, envs

__all__ = ["EvaluationRequest", "evaluate_model", "evaluate_saved"]


@dataclass(frozen=True)
class EvaluationRequest:
    """Which model file to evaluate, on which experiment config, and how."""

    model_path: str
    config: dict[str, Any]
    n_episodes: int = 10
    deterministic: bool = True
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for process and Ray boundaries)."""
        return asdict(self)


def evaluate_model(
    model: Any, config: dict[str, Any], n_episodes: int, deterministic: bool, seed: int | None
) -> dict[str, Any]:
    """Run ``n_episodes`` with SB3's ``evaluate_policy`` and summarise the episode returns."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(config["environment"], n_envs=1, seed=seed, env_kwargs=config.get("env_kwargs") or None)
    started = time.monotonic()
    try:
        rewards, lengths = evaluate_policy(
            model, env, n_eval_episodes=n_episodes, deterministic=deterministic, return_episode_rewards=True
        )
    finally:
        env.close()
    assert isinstance(rewards, list) and isinstance(lengths, list)  # return_episode_rewards=True
    return {
        "mean_reward": float(statistics.fmean(rewards)),
        "std_reward": float(statistics.pstdev(rewards)),
        "min_reward": float(min(rewards)),
        "max_reward": float(max(rewards)),
        "mean_ep_length": float(statistics.fmean(lengths)),
        "n_episodes": n_episodes,
        "deterministic": deterministic,
        "duration_s": round(time.monotonic() - started, 3),
    }


def evaluate_saved(request: EvaluationRequest, torch_threads: int = 1) -> dict[str, Any]:
    """Load ``request.model_path`` and evaluate it (runs in a worker process)."""
    import torch

    torch.set_num_threads(torch_threads)
    config = request.config
    if config.get("custom_env"):
        envs.ensure_registered(envs.CustomEnvSpec.from_dict(config["custom_env"]))
    model = algorithms.get_algorithm(config["algorithm"]).load().load(request.model_path, device="cpu")
    return evaluate_model(model, config, request.n_episodes, request.deterministic, request.seed)
