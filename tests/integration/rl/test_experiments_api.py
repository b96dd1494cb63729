"""The experiments API end to end on both databases: validation, every algorithm, queueing,
metric history, checkpoints, events, stop and evaluation."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx

from agentlightning.core.context import AppContext
from agentlightning.observability.metrics import RL_SESSIONS
from agentlightning.rl.manager import ExperimentManager
from tests.helpers import unique

from .helpers import tiny, wait_for

API = "/api/v2/rl/experiments"


async def test_validation_errors_say_which_field(client: httpx.AsyncClient, developer: dict[str, str]) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"algorithm": "ppo3", "environment": "CartPole-v1"}, "algorithm", "unknown algorithm 'ppo3'"),
        ({"algorithm": "ppo", "environment": "CartPol-v1"}, "environment", "Did you mean: `CartPole`"),
        (
            {"algorithm": "dqn", "environment": "Pendulum-v1"},
            "algorithm",
            "dqn cannot act in Pendulum-v1's action space",
        ),
        (
            {"algorithm": "ppo", "environment": "CartPole-v1", "hyperparameters": {"n_step": 8}},
            "hyperparameters.n_step",
            "did you mean 'n_steps'",
        ),
    ]
    for body, field, message in cases:
        response = await client.post(
            API, json={"name": unique("bad"), "total_timesteps": 100, **body}, headers=developer
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        problems = {e["field"]: e["message"] for e in error["details"]["errors"]}
        assert message in problems[field], problems

    response = await client.post(
        API, json={"name": "x", "algorithm": "ppo", "environment": "CartPole-v1"}, headers=developer
    )
    assert response.status_code == 422  # total_timesteps missing: a pydantic error


async def test_both_request_shapes_are_accepted_and_validated(
    client: httpx.AsyncClient, developer: dict[str, str]
) -> None:
    """Flat, and the spec's ``rl_experiments`` row (name, algorithm, config, agent_id): same result."""
    flat = tiny("ppo", unique("flat"))
    config = {k: v for k, v in flat.items() if k not in ("name", "algorithm")}
    row = {"name": unique("row"), "algorithm": "ppo", "config": config, "agent_id": None}
    created = {}
    for body in (flat, row):
        response = await client.post(API, json=body, headers=developer)
        assert response.status_code == 201, response.text
        created[body["name"]] = response.json()["data"]
    first, second = created[flat["name"]], created[row["name"]]
    assert first["config"] == second["config"] and second["algorithm"] == "ppo"
    for experiment in (first, second):
        await client.post(f"{API}/{experiment['id']}/stop", headers=developer)

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"config": {**config, "total_timesteps": "many"}}, "body.config.total_timesteps", "valid integer"),
        ({"config": {k: v for k, v in config.items() if k != "environment"}}, "body.config.environment", "required"),
        ({"config": {**config, "learning_rate": 0.1}}, "body.config.learning_rate", "Extra inputs"),
        ({"config": {**config, "algorithm": "dqn"}}, "body.config.algorithm", "differs from algorithm"),
        ({"config": config, "environment": "CartPole-v1"}, "body.environment", "Extra inputs"),
        ({"config": "ppo please"}, "body.config", "valid dictionary"),
    ]
    for change, field, message in cases:
        body = {"name": unique("row"), "algorithm": "ppo", **change}
        response = await client.post(API, json=body, headers=developer)
        assert response.status_code == 422, response.text
        errors = {e["field"]: e["message"] for e in response.json()["error"]["details"]["errors"]}
        assert message in errors.get(field, ""), (field, errors)
    # Meaning is checked for both shapes alike, and names the field inside ``config``'s contents.
    unknown_env = {"name": unique("row"), "algorithm": "ppo", "config": {**config, "environment": "CartPol-v1"}}
    response = await client.post(API, json=unknown_env, headers=developer)
    assert response.status_code == 422
    assert "environment" in {e["field"] for e in response.json()["error"]["details"]["errors"]}


async def test_rbac_and_not_found(client: httpx.AsyncClient, login: Callable[[str], Any]) -> None:
    user = await login("user")
    body = tiny("ppo", unique("rbac"))
    assert (await client.post(API, json=body, headers=user)).status_code == 403
    assert (await client.get(API, headers=user)).status_code == 403
    developer = await login("developer")
    response = await client.get(f"{API}/999999", headers=developer)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "EXPERIMENT_NOT_FOUND"


async def test_every_algorithm_runs_queued_beyond_the_cap(
    client: httpx.AsyncClient, developer: dict[str, str], ctx: AppContext, manager: ExperimentManager
) -> None:
    algorithms = ["ppo", "a2c", "dqn", "sac", "td3"]
    before = {a: RL_SESSIONS.labels(algorithm=a, status="completed")._value.get() for a in algorithms}
    events: list[dict[str, Any]] = []
    peak_running = 0

    async with ctx.events.subscribe() as sub:
        ids = {}
        for algorithm in algorithms:
            response = await client.post(API, json=tiny(algorithm, unique(algorithm)), headers=developer)
            assert response.status_code == 201, response.text
            data = response.json()["data"]
            assert data["status"] == "queued"
            ids[algorithm] = data["id"]
        duplicate = await client.post(API, json=tiny("ppo", data["name"]), headers=developer)
        assert duplicate.status_code == 409

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 240
        while True:
            peak_running = max(peak_running, len(manager.handles))
            listing = (await client.get(API, params={"limit": 500}, headers=developer)).json()["data"]["items"]
            mine = [e for e in listing if e["id"] in ids.values()]
            if all(e["status"] in ("completed", "failed", "stopped") for e in mine):
                break
            assert loop.time() < deadline, [(e["name"], e["status"]) for e in mine]
            await asyncio.sleep(0.2)
        while True:
            try:
                event = await sub.get(timeout=0.5)
            except asyncio.TimeoutError:
                break
            if event["topic"] == "training":
                events.append(event)

    assert peak_running <= 2, "the cap on concurrent sessions holds"
    for algorithm, experiment_id in ids.items():
        exp = (await client.get(f"{API}/{experiment_id}", headers=developer)).json()["data"]
        assert exp["status"] == "completed", (algorithm, exp["error"])
        assert exp["attempts"] == 1 and exp["backend"] == "subprocess"
        metrics = exp["metrics"]
        assert metrics["timesteps"] >= exp["config"]["total_timesteps"] and metrics["progress"] == 1.0
        assert metrics["final_evaluation"]["n_episodes"] == 2
        assert "fps" in metrics and "losses" in metrics and metrics["losses"]
        assert exp["start_time"] and exp["end_time"]
        assert RL_SESSIONS.labels(algorithm=algorithm, status="completed")._value.get() == before[algorithm] + 1

        history = (await client.get(f"{API}/{experiment_id}/metrics", headers=developer)).json()["data"]["items"]
        progress = [p for p in history if p["kind"] == "progress"]
        assert progress and progress[-1]["timesteps"] == metrics["timesteps"]
        assert [p for p in history if p["kind"] == "evaluation"]

        checkpoints = (await client.get(f"{API}/{experiment_id}/checkpoints", headers=developer)).json()["data"]
        assert any(c["final"] for c in checkpoints) and any(not c["final"] for c in checkpoints)
        assert all("path" not in c for c in checkpoints), "server paths are not exposed"

        seen = [e["data"]["change"] for e in events if e["data"]["experiment_id"] == experiment_id]
        assert seen[0] == "queued" and "running" in seen and "progress" in seen and seen[-1] == "completed"
        assert all(e["event"] == "training_update" for e in events)

    exposition = (await client.get("/metrics", headers=developer)).text
    assert f'rl_training_duration_seconds{{experiment_id="{ids["sac"]}"}}' in exposition
    assert 'rl_sessions_total{algorithm="td3",status="completed"}' in exposition

    download = await client.get(f"{API}/{ids['ppo']}/checkpoints/final/download", headers=developer)
    assert download.status_code == 200
    assert "policy.pth" in zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    missing = await client.get(f"{API}/{ids['ppo']}/checkpoints/123456789/download", headers=developer)
    assert missing.status_code == 404

    only_dqn = (await client.get(API, params={"algorithm": "dqn", "status": "completed"}, headers=developer)).json()
    assert ids["dqn"] in [e["id"] for e in only_dqn["data"]["items"]]


async def test_stop_running_experiment_then_evaluate(
    client: httpx.AsyncClient, developer: dict[str, str], manager: ExperimentManager, ctx: AppContext
) -> None:
    body = tiny("ppo", unique("stop"), total_timesteps=2_000_000)
    experiment_id = (await client.post(API, json=body, headers=developer)).json()["data"]["id"]
    await wait_for(
        client, developer, experiment_id, lambda e: e["status"] == "running" and e["metrics"]["timesteps"] > 0
    )

    response = await client.post(f"{API}/{experiment_id}/stop", headers=developer)
    assert response.status_code == 202
    assert response.json()["data"]["stop_requested"] is True
    exp = await wait_for(client, developer, experiment_id, lambda e: e["status"] == "stopped", timeout=30)
    assert exp["metrics"]["timesteps"] < 2_000_000
    assert any(c["final"] for c in exp["checkpoints"])

    again = await client.post(f"{API}/{experiment_id}/stop", headers=developer)
    assert again.status_code == 409 and again.json()["error"]["code"] == "EXPERIMENT_FINISHED"

    evaluation = await client.post(
        f"{API}/{experiment_id}/evaluate", json={"n_episodes": 3, "seed": 1}, headers=developer
    )
    assert evaluation.status_code == 200, evaluation.text
    result = evaluation.json()["data"]
    assert result["n_episodes"] == 3 and result["mean_reward"] > 0 and result["checkpoint"] == "final_model.zip"
    history = (
        await client.get(f"{API}/{experiment_id}/metrics", params={"kind": "evaluation"}, headers=developer)
    ).json()
    assert history["data"]["items"][-1]["on_demand"] is True

    # A process that runs no RL manager (an API replica with its services off) evaluates in a
    # child process of its own.
    running = ctx.services.pop("rl")
    try:
        elsewhere = await client.post(
            f"{API}/{experiment_id}/evaluate", json={"n_episodes": 2, "seed": 1}, headers=developer
        )
    finally:
        ctx.services["rl"] = running
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere.json()["data"]["n_episodes"] == 2


async def test_stop_before_start_and_queue_cap(
    client: httpx.AsyncClient, developer: dict[str, str], ctx: AppContext
) -> None:
    # No manager runs: the experiment stays queued, and stopping it is immediate.
    experiment_id = (await client.post(API, json=tiny("ppo", unique("queued")), headers=developer)).json()["data"]["id"]
    response = await client.post(f"{API}/{experiment_id}/stop", headers=developer)
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["status"] == "stopped" and data["end_time"]
    evaluation = await client.post(f"{API}/{experiment_id}/evaluate", headers=developer)
    assert evaluation.status_code == 404  # no checkpoint yet


async def test_custom_environment_registration_and_training(
    client: httpx.AsyncClient, developer: dict[str, str], manager: ExperimentManager
) -> None:
    env_id = f"Corridor{unique('x').replace('-', '')}-v0"
    rejected = await client.post(
        "/api/v2/rl/environments", json={"env_id": env_id, "entry_point": "os.path:join"}, headers=developer
    )
    assert rejected.status_code == 422 and "allow-list" in rejected.json()["error"]["message"]
    response = await client.post(
        "/api/v2/rl/environments",
        json={
            "env_id": env_id,
            "entry_point": "agentlightning.rl.classic.examples:CorridorEnv",
            "kwargs": {"length": 4},
            "max_episode_steps": 30,
        },
        headers=developer,
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["action_space"] == "Discrete(2)"
    duplicate = await client.post(
        "/api/v2/rl/environments",
        json={"env_id": env_id, "entry_point": "agentlightning.rl.classic.examples:CorridorEnv"},
        headers=developer,
    )
    assert duplicate.status_code == 409
    listing = (await client.get("/api/v2/rl/environments", headers=developer)).json()["data"]
    assert env_id in [e["env_id"] for e in listing["custom"]] and "CartPole-v1" in listing["builtin"]

    body = tiny("dqn", unique("corridor"), environment=env_id)
    response = await client.post(API, json=body, headers=developer)
    assert response.status_code == 201, response.text
    exp = await wait_for(
        client, developer, response.json()["data"]["id"], lambda e: e["status"] in ("completed", "failed")
    )
    assert exp["status"] == "completed", exp["error"]
    assert exp["config"]["custom_env"]["entry_point"].endswith(":CorridorEnv")
