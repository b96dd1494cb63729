"""Auto-RL with the real ``grpo`` optimiser, end to end: a manual trigger trains a LoRA adapter on
SmolLM2-135M on the CPU (one step, two generations of four tokens, one task), the gate promotes
it, the runtime serves the agent with that adapter (the transformers provider loads it), and
``auto-rollback`` takes it away again.

The gate's decision is made deterministic by the serving, not by a switch in the code: the
agent's own upstream is a scripted OpenAI-compatible stand-in that answers nothing (every run of
the incumbent fails: an empty answer), while a candidate with an ``adapter`` is served by the
local model, whose greedy answer is never empty; the held-out verifier accepts any non-empty
answer. So ``b`` = every held-out task, ``c`` = 0, and ``p = 2**-3 = 0.125 < alpha = 0.2`` (the
policy's ``alpha``; training quality is not what this test is about, test_grpo.py covers it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agentlightning.agents.llm import ProviderFactory
from agentlightning.agents.runtime import AgentRunError, AgentRuntime
from agentlightning.agents.service import AgentService
from agentlightning.agents.tools.registry import default_registry
from agentlightning.agents.tracing import TraceRecorder
from agentlightning.core.context import AppContext
from agentlightning.rl.manager import ExperimentManager
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import poll_until_finished
from tests.integration.rl.helpers import auto_rl_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ANY_ANSWER = {"type": "regex", "pattern": r"\S"}
TRAIN = [{"id": "g-train-0", "prompt": "What is 2+3?", "verifier": {"type": "numeric", "expected": 5}}]
HELDOUT = [{"id": f"g-held-{i}", "prompt": f"What is {i}+{i}?", "verifier": ANY_ANSWER} for i in range(1, 4)]
TINY = {
    "max_steps": 1,
    "num_generations": 2,
    "max_completion_length": 4,
    "lora_r": 2,
    "measure": False,
    "evaluate": False,
}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only: the run is storage-neutral beyond what the other Auto-RL tests check on both
    backends, and a second GRPO training would double this test's minute on a 2-core machine."""
    return str(request.param)


@pytest.fixture(scope="module")
def silent_llm() -> Iterator[FakeLLMServer]:
    """The agent's own upstream: answers every request with nothing."""
    with FakeLLMServer(lambda body: {"content": ""}) as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], silent_llm: FakeLLMServer, tmp_path: Path) -> Settings:
    """The silent upstream for the agent, SmolLM2 for adapters (as make install left it), short answers."""
    return auto_rl_settings(
        settings_factory,
        silent_llm.base_url,
        tmp_path,
        local_model="smollm2-135m",
        local_model_max_new_tokens=8,
        rl_lease_seconds=120,
        auto_rl_eval_concurrency=1,
    )


async def _serve(ctx: AppContext, agent_id: int) -> tuple[str, str]:
    """Run the agent once through the runtime as a task would: (provider, model) that answered."""
    runtime = AgentRuntime(ctx, ProviderFactory(ctx.settings), default_registry())
    profile = await AgentService(ctx).profile(agent_id)
    result = await runtime.run(profile, "What is 2+2?", recorder=TraceRecorder(task_id=None, agent_id=agent_id))
    assert result.answer
    return result.provider, result.model


async def test_grpo_adapter_is_promoted_served_and_rolled_back(
    client: httpx.AsyncClient,
    ctx: AppContext,
    login: Callable[[str], Awaitable[dict[str, str]]],
    manager: ExperimentManager,
) -> None:
    dev = await login("developer")
    created = await client.post(
        "/api/v2/agents",
        json={
            "name": "grpo-auto",
            "type": "math",
            "config": {"system_prompt": "Reply with one number.", "temperature": 0.0, "max_tokens": 8, "tools": []},
        },
        headers=dev,
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["data"]["id"]
    policy = {"alpha": 0.2, "options": {"train": TRAIN, "heldout": HELDOUT, **TINY}}
    assert (await client.put(f"/api/v2/rl/auto-policies/{agent_id}", json=policy, headers=dev)).status_code == 200
    with pytest.raises(AgentRunError):  # the incumbent, served by its silent upstream, never answers
        await _serve(ctx, agent_id)

    started = await client.post(
        "/api/v2/rl/auto-trigger", json={"agent_id": agent_id, "algorithm": "grpo"}, headers=dev
    )
    assert started.status_code == 202, started.text
    url = f"/api/v2/rl/experiments/{started.json()['data']['experiment_id']}"
    done = await poll_until_finished(client, dev, url, ("completed", "failed", "stopped"), 420.0, 0.5, "grpo run")
    assert done["status"] == "completed", done["error"]
    final = done["metrics"]["final_evaluation"]
    adapter = final["best_resources"]["adapter"]
    assert adapter and Path(adapter).is_relative_to(Path(ctx.settings.rl_artifacts_dir).resolve())
    assert (Path(adapter) / "adapter_model.safetensors").is_file()
    gate = final["gate"]
    assert gate["incumbent_passes"] == 0 and gate["candidate_passes"] == len(HELDOUT), final
    assert gate["p_value"] == pytest.approx(0.125) and final["promoted"] is True

    config = (await client.get(f"/api/v2/agents/{agent_id}", headers=dev)).json()["data"]["config"]
    assert config["adapter"] == adapter and config["resources_version"] == 2
    provider, model = await _serve(ctx, agent_id)  # the runtime now serves base + adapter
    assert provider == "transformers" and model.endswith(f"+lora:{Path(adapter).name}")

    rolled = await client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent_id}, headers=dev)
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["data"]["before"]["adapter"] == adapter and rolled.json()["data"]["after"]["adapter"] is None
    config = (await client.get(f"/api/v2/agents/{agent_id}", headers=dev)).json()["data"]["config"]
    assert "adapter" not in config and config["resources_version"] == 3
    with pytest.raises(AgentRunError):  # back on its own upstream
        await _serve(ctx, agent_id)
