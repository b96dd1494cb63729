"""The training runner, in process: every algorithm, checkpoints, stop and resume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentlightning.rl.classic.runner import FINAL_MODEL, TrainingJob, run_training

from .helpers import ListReporter, tiny_config


@pytest.mark.parametrize("algorithm", ["ppo", "a2c", "dqn", "sac", "td3"])
def test_each_algorithm_trains_streams_and_checkpoints(algorithm: str, tmp_path: Path) -> None:
    reporter = ListReporter()
    config = tiny_config(algorithm)
    result = run_training(TrainingJob(1, config, str(tmp_path), report_interval_s=0.05), reporter)

    assert result["status"] == "completed"
    assert result["timesteps"] >= config["total_timesteps"]
    assert os.path.exists(result["final_model"])
    progress = reporter.of_type("progress")
    assert progress and progress[-1]["timesteps"] == result["timesteps"]
    assert progress[-1]["fps"] > 0
    assert progress[-1]["ep_rew_mean"] is not None
    assert progress[-1]["losses"], "losses are streamed once training updates ran"
    checkpoints = reporter.of_type("checkpoint")
    assert [c for c in checkpoints if not c["final"]], "periodic checkpoints are saved"
    assert checkpoints[-1]["final"] and checkpoints[-1]["path"].endswith(FINAL_MODEL)
    final_eval = reporter.of_type("evaluation")[-1]
    assert final_eval["final"] and final_eval["n_episodes"] == 2
    assert result["evaluation"]["mean_reward"] == final_eval["mean_reward"]


def test_stop_request_ends_training_within_a_rollout(tmp_path: Path) -> None:
    reporter = ListReporter(stop_after_timesteps=1)
    config = tiny_config("ppo", total_timesteps=200_000)
    result = run_training(TrainingJob(1, config, str(tmp_path), report_interval_s=0.05), reporter)
    assert result["status"] == "stopped"
    # n_steps=256: the stop lands inside the first rollouts, far from the budget.
    assert result["timesteps"] < 256 * 8
    assert result["evaluation"] is None
    assert reporter.of_type("checkpoint")[-1]["final"]


def test_resume_continues_from_checkpoint_timesteps(tmp_path: Path) -> None:
    first = ListReporter()
    config = tiny_config("ppo")
    run_training(TrainingJob(1, config, str(tmp_path / "a")), first)
    checkpoint = [c for c in first.of_type("checkpoint") if not c["final"]][0]

    resumed = ListReporter()
    result = run_training(
        TrainingJob(1, config, str(tmp_path / "b"), resume_from=checkpoint["path"], report_interval_s=0.05), resumed
    )
    assert result["resumed_from"] == checkpoint["path"]
    assert result["timesteps"] >= config["total_timesteps"]
    assert resumed.of_type("progress")[0]["timesteps"] > checkpoint["timesteps"] - 1


def test_periodic_evaluation_is_reported(tmp_path: Path) -> None:
    reporter = ListReporter()
    config = tiny_config("ppo", evaluation={"n_episodes": 1, "freq": 512})
    run_training(TrainingJob(1, config, str(tmp_path)), reporter)
    periodic = [e for e in reporter.of_type("evaluation") if not e.get("final")]
    assert [e["timesteps"] for e in periodic] == [512, 1024]


def test_custom_environment_trains_in_the_runner(tmp_path: Path) -> None:
    config = tiny_config(
        "dqn",
        environment="CorridorRunner-v0",
        custom_env={
            "env_id": "CorridorRunner-v0",
            "entry_point": "agentlightning.rl.classic.examples:CorridorEnv",
            "kwargs": {"length": 4},
            "max_episode_steps": 30,
        },
    )
    result = run_training(TrainingJob(1, config, str(tmp_path)), ListReporter())
    assert result["status"] == "completed"
