"""Validation of experiment configs: every kind of mistake names its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentlightning.rl.classic.envs import CustomEnvSpec
from agentlightning.rl.config import ConfigError, ExperimentConfig, validate_config


def _problems(**kwargs) -> dict[str, str]:
    kwargs.setdefault("total_timesteps", 1000)
    with pytest.raises(ConfigError) as info:
        validate_config(ExperimentConfig(**kwargs))
    return {p.field: p.message for p in info.value.problems}


def test_valid_config_reports_spaces_and_normalises_algorithm() -> None:
    checked = validate_config(ExperimentConfig(algorithm="PPO", environment="CartPole-v1", total_timesteps=100))
    assert checked.config.algorithm == "ppo"
    assert checked.spaces["action_space"] == "Discrete(2)"


def test_unknown_algorithm_and_environment_are_both_reported() -> None:
    problems = _problems(algorithm="ppo2", environment="CartPol-v1")
    assert "unknown algorithm 'ppo2'" in problems["algorithm"]
    assert "ppo, a2c, dqn, sac, td3" in problems["algorithm"]
    assert "Did you mean: `CartPole`" in problems["environment"]


def test_algorithm_that_cannot_act_in_the_action_space() -> None:
    assert (
        "dqn cannot act in Pendulum-v1's action space"
        in _problems(algorithm="dqn", environment="Pendulum-v1")["algorithm"]
    )
    assert "sac supports Box" in _problems(algorithm="sac", environment="CartPole-v1")["algorithm"]


def test_unknown_and_mistyped_hyperparameters() -> None:
    problems = _problems(
        algorithm="ppo",
        environment="CartPole-v1",
        hyperparameters={"n_step": 64, "gamma": "high", "env": 1, "rollout_buffer_class": "x"},
    )
    assert "did you mean 'n_steps'" in problems["hyperparameters.n_step"]
    assert "gamma must be a number" in problems["hyperparameters.gamma"]
    assert "set by the platform" in problems["hyperparameters.env"]
    assert "takes a Python class" in problems["hyperparameters.rollout_buffer_class"]


def test_hyperparameter_rejected_by_sb3_in_dry_run() -> None:
    problems = _problems(algorithm="ppo", environment="CartPole-v1", hyperparameters={"batch_size": 1})
    assert "ppo rejected the configuration" in problems["hyperparameters"]


def test_schedules_policy_kwargs_and_action_noise_are_accepted() -> None:
    validate_config(
        ExperimentConfig(
            algorithm="td3",
            environment="Pendulum-v1",
            total_timesteps=100,
            hyperparameters={
                "learning_rate": "lin_1e-3",
                "policy_kwargs": {"net_arch": [32, 32], "activation_fn": "tanh"},
                "action_noise": {"type": "normal", "sigma": 0.2},
                "train_freq": [1, "episode"],
            },
        )
    )
    problems = _problems(algorithm="ppo", environment="CartPole-v1", hyperparameters={"learning_rate": "exp_1"})
    assert "schedule must look like" in problems["hyperparameters.learning_rate"]


def test_unknown_policy_and_bad_env_kwargs() -> None:
    assert (
        "unknown policy 'MlpPolicyX'"
        in _problems(algorithm="ppo", environment="CartPole-v1", policy="MlpPolicyX")["policy"]
    )
    problems = _problems(algorithm="ppo", environment="CartPole-v1", env_kwargs={"gravity_x": 1})
    assert "cannot be created" in problems["environment"]


def test_shape_errors_come_from_pydantic() -> None:
    with pytest.raises(ValidationError):
        ExperimentConfig(algorithm="ppo", environment="CartPole-v1", total_timesteps=0)
    with pytest.raises(ValidationError):
        ExperimentConfig(algorithm="ppo", environment="CartPole-v1", total_timesteps=10, surprise=1)


def test_custom_environment_is_embedded_for_workers() -> None:
    spec = CustomEnvSpec("CorridorTest-v0", "agentlightning.rl.classic.examples:CorridorEnv", {"length": 4}, 50)
    checked = validate_config(
        ExperimentConfig(algorithm="dqn", environment="CorridorTest-v0", total_timesteps=100),
        {spec.env_id: spec},
    )
    assert checked.config.custom_env == spec.to_dict()


def test_caller_supplied_custom_env_is_never_trusted() -> None:
    """A caller cannot smuggle an entry point past the admin allow-list through ``custom_env``."""
    smuggled = {"env_id": "CartPole-v1", "entry_point": "subprocess:Popen", "kwargs": {"args": ["true"]}}
    checked = validate_config(
        ExperimentConfig(algorithm="ppo", environment="CartPole-v1", total_timesteps=100, custom_env=smuggled),
        dry_run=False,
    )
    assert checked.config.custom_env is None
