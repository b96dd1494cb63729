"""Custom environment registration: allow-list first, then import and type checks."""

from __future__ import annotations

import gymnasium as gym
import pytest

from agentlightning.rl.classic.envs import CustomEnvSpec, EnvError, check_entry_point, ensure_registered, resolve

ALLOWED = ["agentlightning.rl.classic.examples"]


def test_allowed_entry_point_imports_the_class() -> None:
    cls = check_entry_point("agentlightning.rl.classic.examples:CorridorEnv", ALLOWED)
    assert issubclass(cls, gym.Env)


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("os:system", "not in the allow-list"),
        ("agentlightning.rl.classic.examples_evil:X", "not in the allow-list"),
        ("agentlightning.rl.classic.examples", "must look like"),
        ("agentlightning.rl.classic.examples:Nope", "cannot import"),
        ("agentlightning.rl.classic.examples:Any", "not a gymnasium.Env subclass"),
    ],
)
def test_rejected_entry_points(entry_point: str, message: str) -> None:
    with pytest.raises(EnvError, match=message):
        check_entry_point(entry_point, ALLOWED)


def test_empty_allow_list_rejects_everything() -> None:
    with pytest.raises(EnvError, match="none configured"):
        check_entry_point("agentlightning.rl.classic.examples:CorridorEnv", [])


def test_ensure_registered_is_idempotent_and_follows_changes() -> None:
    spec = CustomEnvSpec("CorridorReg-v0", "agentlightning.rl.classic.examples:CorridorEnv", {"length": 3}, 20)
    ensure_registered(spec)
    ensure_registered(spec)
    env = gym.make("CorridorReg-v0")
    assert env.unwrapped.length == 3
    ensure_registered(CustomEnvSpec(spec.env_id, spec.entry_point, {"length": 5}, 20))
    assert gym.make("CorridorReg-v0").unwrapped.length == 5
    assert resolve("CorridorReg-v0").max_episode_steps == 20
