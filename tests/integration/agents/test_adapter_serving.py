"""An agent whose config carries a LoRA ``adapter`` (what Auto-RL promotes from ``grpo``) runs its tasks on
base model + adapter through the transformers provider; an adapter path outside RL_ARTIFACTS_DIR is refused.

The adapter here is a freshly initialised (untrained) LoRA on SmolLM2-135M-Instruct: serving does
not depend on how it was trained (tests/integration/rl/test_grpo.py trains one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from agentlightning.agents.pool import WorkerPool
from agentlightning.settings import Settings
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, save_tiny_adapter, wait_for_task

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite", "postgres"])]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RL_ARTIFACTS_DIR with one LoRA adapter (as grpo saves it) under ``exp/adapter``."""
    return save_tiny_adapter(tmp_path_factory.mktemp("rl"))


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], artifacts: Path) -> Settings:
    return settings_factory(
        agent_poll_interval_seconds=0.2, agent_workers_min=1, agent_workers_max=1, rl_artifacts_dir=str(artifacts)
    )


async def test_agent_with_an_adapter_runs_on_base_plus_adapter(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, artifacts: Path
) -> None:
    config = {"adapter": str(artifacts / "exp" / "adapter"), "max_tokens": 12, "temperature": 0.0}
    agent = await create_agent(client, admin, unique("lora"), config=config)
    assign = await client.post(
        "/api/v2/agents/assign", json={"task": "Say hello.", "agent_id": agent["id"]}, headers=admin
    )
    assert assign.status_code in (200, 201, 202), assign.text
    task = await wait_for_task(client, admin, assign.json()["task_id"], timeout=180)
    assert task["status"] == "completed", task
    assert task["result"]["provider"] == "transformers"
    assert task["result"]["model"] == "smollm2-135m-instruct+lora:adapter"
    assert task["result"]["answer"]


@pytest.mark.parametrize("adapter", ["/etc", "../outside", "exp/../../outside"])
async def test_an_adapter_outside_the_artifacts_dir_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], adapter: str
) -> None:
    created = await client.post(
        "/api/v2/agents",
        json={"name": unique("evil"), "type": "test_agent", "config": {"adapter": adapter}},
        headers=admin,
    )
    assert created.status_code == 422 and created.json()["error"]["code"] == "VALIDATION_ERROR"
    agent = await create_agent(client, admin, unique("fine"))
    updated = await client.put(f"/api/v2/agents/{agent['id']}", json={"config": {"adapter": adapter}}, headers=admin)
    assert updated.status_code == 422, updated.text
