"""``agentlightning rl train|list|show|stop`` against a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentlightning.rl.cli import app
from tests.helpers import cli_environment, unique


@pytest.fixture
def cli_env(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    with cli_environment(
        backend,
        request,
        monkeypatch,
        RL_ARTIFACTS_DIR=str(tmp_path / "rl"),
        RL_REPORT_INTERVAL_SECONDS="0.2",
        RL_POLL_INTERVAL_SECONDS="0.1",
        COLUMNS="250",  # Rich tables must not truncate names
    ):
        yield


def test_train_list_show_stop(cli_env: None) -> None:
    runner = CliRunner()
    name = unique("cli")
    result = runner.invoke(
        app,
        [
            "train",
            "--algo",
            "ppo",
            "--env",
            "CartPole-v1",
            "--timesteps",
            "1024",
            "--hp",
            "n_steps=256",
            "--hp",
            "batch_size=64",
            "--seed",
            "3",
            "--eval-episodes",
            "2",
            "--checkpoint-freq",
            "512",
            "--name",
            name,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "evaluation: mean reward" in result.output

    listing = runner.invoke(app, ["list", "--limit", "500"])
    assert listing.exit_code == 0 and name in listing.output

    experiment_id = int(result.output.split("experiment ")[1].split()[0])
    shown = runner.invoke(app, ["show", str(experiment_id)])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["status"] == "completed"

    stopped = runner.invoke(app, ["stop", str(experiment_id)])
    assert stopped.exit_code == 2 and "already completed" in stopped.output

    invalid = runner.invoke(app, ["train", "--algo", "dqn", "--env", "Pendulum-v1", "--timesteps", "10"])
    assert invalid.exit_code == 2 and "dqn cannot act in Pendulum-v1" in invalid.output

    queued = runner.invoke(
        app,
        [
            "train",
            "--algo",
            "ppo",
            "--env",
            "CartPole-v1",
            "--timesteps",
            "100",
            "--detach",
            "--name",
            unique("detached"),
        ],
    )
    assert queued.exit_code == 0 and "queued" in queued.output
    queued_id = int(queued.output.split("experiment ")[1].split()[0])
    assert runner.invoke(app, ["stop", str(queued_id)]).exit_code == 0


def test_train_progress_stops_at_the_requested_steps(cli_env: None) -> None:
    # PPO collects rollouts of 256 steps: 1000 requested means 1024 trained; the bar says 1,000/1,000.
    result = CliRunner().invoke(
        app,
        ["train", "--algo", "ppo", "--env", "CartPole-v1", "--timesteps", "1000", "--hp", "n_steps=256"]
        + ["--hp", "batch_size=64", "--eval-episodes", "2", "--name", unique("cli-bar")],
    )
    assert result.exit_code == 0, result.output
    assert "1,000/1,000 steps" in result.output, result.output
    assert "1,024/1,000" not in result.output
    assert "after 1,024 steps" in result.output  # the result line tells what was really trained
