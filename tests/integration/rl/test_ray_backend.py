"""Experiments on the Ray backend (a local Ray with one CPU), through the API on both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import ray

from agentlightning.rl.manager import ExperimentManager
from tests.helpers import unique

from .helpers import tiny, wait_for

API = "/api/v2/rl/experiments"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=1, object_store_memory=80 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


async def test_experiment_on_ray_streams_checkpoints_and_evaluates(
    local_ray: None, client: httpx.AsyncClient, developer: dict[str, str], manager: ExperimentManager
) -> None:
    body = tiny("ppo", unique("ray"), backend="ray")
    response = await client.post(API, json=body, headers=developer)
    assert response.status_code == 201, response.text
    exp = await wait_for(
        client, developer, response.json()["data"]["id"], lambda e: e["status"] in ("completed", "failed")
    )
    assert exp["status"] == "completed", exp["error"]
    assert exp["backend"] == "ray"
    assert exp["metrics"]["final_evaluation"]["n_episodes"] == 2
    checkpoints = exp["checkpoints"]
    assert any(c["final"] for c in checkpoints) and any(not c["final"] for c in checkpoints)
    # Shipped from the Ray worker into this server's artifacts directory.
    path = await manager_checkpoint_path(client, developer, exp["id"])
    assert path.status_code == 200 and len(path.content) > 1000
    assert os.path.isdir(os.path.join(manager.settings.rl_artifacts_dir, "experiments", str(exp["id"]), "checkpoints"))

    evaluation = await client.post(f"{API}/{exp['id']}/evaluate", json={"n_episodes": 2}, headers=developer)
    assert evaluation.status_code == 200, evaluation.text
    assert evaluation.json()["data"]["n_episodes"] == 2


async def manager_checkpoint_path(
    client: httpx.AsyncClient, headers: dict[str, str], experiment_id: int
) -> httpx.Response:
    return await client.get(f"{API}/{experiment_id}/checkpoints/latest/download", headers=headers)
