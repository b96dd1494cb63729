"""What ``agentlightning rl train``'s progress bar shows: never past the requested steps, and the
evaluation stage once training is done."""

from __future__ import annotations

from typing import Any

from agentlightning.rl.cli import progress_view


def _exp(status: str, timesteps: int, **metrics: Any) -> dict[str, Any]:
    return {
        "status": status,
        "metrics": {"timesteps": timesteps, **metrics},
        "config": {"evaluation": {"n_episodes": 5}},
    }


def test_the_bar_stops_at_the_requested_steps() -> None:
    # PPO collects whole rollouts: 1000 requested, 1024 trained.
    assert progress_view(_exp("running", 512, ep_rew_mean=21.0), 1000) == (512, "training", "reward=21.0")
    assert progress_view(_exp("completed", 1024, final_evaluation={"mean_reward": 9.0}), 1000)[0] == 1000


def test_the_evaluation_stage_is_shown() -> None:
    assert progress_view(_exp("running", 1024), 1000)[1] == "evaluating 5 episodes"
    evaluated = _exp("running", 1024, final_evaluation={"mean_reward": 9.0})
    assert progress_view(evaluated, 1000)[1] == "finishing"
    assert progress_view(_exp("running", 100), 1000, stopping=True)[1] == "stopping"
    assert progress_view(_exp("queued", 0), 1000) == (0, "queued", "")
    assert progress_view(_exp("completed", 1024), 1000)[1] == "completed"
