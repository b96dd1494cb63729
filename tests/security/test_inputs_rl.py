"""RL resource guards: caps on what one experiment may ask for (a 422 naming the field), a per-user
quota of unfinished experiments (429), and validation that never blocks the API's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentlightning.settings import Settings
from tests.helpers import unique

API = "/api/v2/rl/experiments"


def _body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": unique("guard"),
        "algorithm": "ppo",
        "environment": "CartPole-v1",
        "total_timesteps": 128,
        "checkpoint_freq": 0,
        "hyperparameters": {"n_steps": 64, "batch_size": 32},
        **overrides,
    }


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    return settings_factory(
        rl_artifacts_dir=str(tmp_path / "rl"),
        rl_env_allowed_modules=["tests.security.spin_env"],
        rl_max_active_experiments_per_user=2,
        rl_validation_timeout_seconds=20,
    )


def _names_field(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["error"]["details"]["errors"]
    assert any(e["field"] == field for e in errors), errors


async def test_oversized_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, login: Callable[..., Any]
) -> None:
    headers = await login("developer")
    hp = {"n_steps": 64, "batch_size": 32}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"hyperparameters": {**hp, "policy_kwargs": {"net_arch": [100_000, 100_000]}}},
            "hyperparameters.policy_kwargs.net_arch",
        ),
        (
            {"hyperparameters": {**hp, "policy_kwargs": {"net_arch": [64] * 50}}},
            "hyperparameters.policy_kwargs.net_arch",
        ),
        (
            {"hyperparameters": {**hp, "policy_kwargs": {"net_arch": {"pi": [64], "vf": [1024] * 8}}}},
            "hyperparameters.policy_kwargs.net_arch",
        ),
        ({"hyperparameters": {**hp, "n_steps": 10_000_000}}, "hyperparameters.n_steps"),
        ({"hyperparameters": {**hp, "batch_size": 10_000_000}}, "hyperparameters.batch_size"),
        ({"algorithm": "dqn", "hyperparameters": {"buffer_size": 10**9}}, "hyperparameters.buffer_size"),
        ({"n_envs": 256}, "n_envs"),
        ({"total_timesteps": 900_000_000}, "total_timesteps"),
        ({"total_timesteps": 10_000_000, "checkpoint_freq": 1}, "checkpoint_freq"),
        ({"total_timesteps": 10_000_000, "evaluation": {"freq": 1}}, "evaluation.freq"),
    ]
    for overrides, field in cases:
        _names_field(await client.post(API, json=_body(**overrides), headers=headers), field)


async def test_per_user_quota_of_unfinished_experiments(client: httpx.AsyncClient, login: Callable[..., Any]) -> None:
    alice, bob = await login("developer"), await login("developer")
    ids = []
    for _ in range(2):  # no manager runs here: they stay queued
        response = await client.post(API, json=_body(), headers=alice)
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["id"])
    refused = await client.post(API, json=_body(), headers=alice)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "TOO_MANY_ACTIVE_EXPERIMENTS" and error["details"] == {"active": 2, "limit": 2}
    assert refused.headers["Retry-After"]
    # Another user is not affected; a finished experiment frees a slot.
    assert (await client.post(API, json=_body(), headers=bob)).status_code == 201
    assert (await client.post(f"{API}/{ids[0]}/stop", headers=alice)).status_code == 202
    assert (await client.post(API, json=_body(), headers=alice)).status_code == 201


async def test_heavy_validation_runs_off_the_event_loop_and_times_out(
    client: httpx.AsyncClient, login: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    headers = await login("developer")
    env_id = f"Spin{unique('e').replace('-', '')}-v0"
    registered = await client.post(
        "/api/v2/rl/environments",
        json={"env_id": env_id, "entry_point": "tests.security.spin_env:SpinEnv"},
        headers=headers,
    )
    assert registered.status_code == 201, registered.text

    signal = tmp_path / "constructed"
    body = _body(environment=env_id, env_kwargs={"signal": str(signal), "spin": True})
    creating = asyncio.create_task(client.post(API, json=body, headers=headers))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while not signal.exists():  # the environment is being built (and now spins forever)
        assert loop.time() < deadline and not creating.done(), "validation never started"
        await asyncio.sleep(0.05)

    # Meanwhile the API answers other clients.
    for _ in range(3):
        assert (await client.get("/api/v2/health")).status_code == 200
        assert (await client.get(API, headers=headers)).status_code == 200
    assert not creating.done()

    response = await asyncio.wait_for(creating, timeout=settings.rl_validation_timeout_seconds + 60)
    _names_field(response, "environment")
    assert "longer than" in response.text
    # The killed worker is replaced: the next validation works.
    assert (await client.post(API, json=_body(), headers=headers)).status_code == 201
