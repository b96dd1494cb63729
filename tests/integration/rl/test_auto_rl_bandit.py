"""Auto-RL with the real ``bandit`` optimiser, end to end on both backends: the run chooses among
the agent's own declared ``config.variants``, and the gate promotes the winning variant's
overrides (a better variant is promoted, a worse one never is).

The scripted model is that of :mod:`tests.integration.rl.test_auto_rl`: with ``GOOD`` in the
system prompt it adds right, with ``BAD`` it is always off by one, otherwise right on even sums.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from agentlightning.rl.manager import ExperimentManager
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import poll_until_finished
from tests.integration.rl.helpers import auto_rl_settings
from tests.integration.rl.test_auto_rl import BASE_PROMPT, HELDOUT_EVEN, HELDOUT_ODD, TRAIN, _script

GOOD = {"name": "good", "system_prompt": f"{BASE_PROMPT} GOOD", "temperature": 0.0}
BAD = {"name": "bad", "system_prompt": f"{BASE_PROMPT} BAD"}


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    """The scripted model for this module."""
    with FakeLLMServer(_script) as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], scripted_llm: FakeLLMServer, tmp_path: Any) -> Settings:
    """Fast manager; agents served by the scripted model."""
    # One evaluation at a time: the seeded bandit then sees rewards in the same order on every run.
    return auto_rl_settings(settings_factory, scripted_llm.base_url, tmp_path, auto_rl_eval_concurrency=1)


async def _run_bandit(
    client: httpx.AsyncClient,
    dev: dict[str, str],
    name: str,
    variants: list[dict[str, Any]],
    heldout: list[Any],
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An agent declaring ``variants``, its policy's tasks inline, one manual ``bandit`` trigger run to its end."""
    created = await client.post(
        "/api/v2/agents",
        json={"name": name, "type": "math", "config": {"system_prompt": BASE_PROMPT, "variants": variants}},
        headers=dev,
    )
    assert created.status_code == 201, created.text
    agent = created.json()["data"]
    # Only task selection and the bandit's own settings in the policy: the variants are the agent's.
    policy = {"options": {"train": TRAIN, "heldout": heldout, "pulls": 36, "report_every": 6, "seed": 7, **options}}
    assert (await client.put(f"/api/v2/rl/auto-policies/{agent['id']}", json=policy, headers=dev)).status_code == 200
    started = await client.post(
        "/api/v2/rl/auto-trigger", json={"agent_id": agent["id"], "algorithm": "bandit"}, headers=dev
    )
    assert started.status_code == 202, started.text
    trigger = started.json()["data"]
    assert trigger["algorithm"] == "bandit"
    url = f"/api/v2/rl/experiments/{trigger['experiment_id']}"
    done = await poll_until_finished(client, dev, url, ("completed", "failed", "stopped"), 120.0, 0.1, "experiment")
    assert done["status"] == "completed", done["error"]
    assert done["algorithm"] == "bandit"
    return agent, done


async def _agent_config(client: httpx.AsyncClient, dev: dict[str, str], agent_id: int) -> dict[str, Any]:
    return (await client.get(f"/api/v2/agents/{agent_id}", headers=dev)).json()["data"]["config"]


async def test_the_better_declared_variant_is_promoted(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], manager: ExperimentManager
) -> None:
    dev = await login("developer")
    agent, done = await _run_bandit(client, dev, "bandit-auto-better", [GOOD, BAD], HELDOUT_ODD)
    final = done["metrics"]["final_evaluation"]
    # The bandit saw the agent's own variants (and the incumbent) and picked the good one.
    assert final["best_resources"]["variant"] == "good"
    # The candidates' evaluation points may land just after the status: wait for them (a full-suite run saw none).
    deadline = time.monotonic() + 60
    while True:
        url = f"/api/v2/rl/experiments/{done['id']}/metrics"
        points = (await client.get(url, headers=dev)).json()["data"]["items"]
        tried = {p.get("variant") for p in points if p["kind"] == "evaluation" and "candidate" in p}
        if tried or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert tried == {"good", "bad", "incumbent"}
    assert final["gate"]["incumbent_passes"] == 0 and final["gate"]["candidate_passes"] == len(HELDOUT_ODD)
    assert final["promoted"] is True, final
    assert final["promotion"]["after"]["variant"] == "good"

    config = await _agent_config(client, dev, agent["id"])
    assert config["variant"] == "good" and config["system_prompt"] == GOOD["system_prompt"]
    assert config["temperature"] == 0.0 and config["resources_version"] == 2
    assert [v["name"] for v in config["variants"]] == ["good", "bad"]  # the declarations stay
    resources = (await client.get(f"/api/v2/agents/{agent['id']}/resources", headers=dev)).json()["data"]
    assert resources["variant"] == "good" and resources["version"] == 2

    rolled = await client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent["id"]}, headers=dev)
    assert rolled.status_code == 200, rolled.text
    config = await _agent_config(client, dev, agent["id"])
    assert "variant" not in config and config["system_prompt"] == BASE_PROMPT


async def test_a_worse_declared_variant_is_never_promoted(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], manager: ExperimentManager
) -> None:
    dev = await login("developer")
    # Only the bad variant (the incumbent does not compete), on held-out tasks the incumbent passes.
    agent, done = await _run_bandit(client, dev, "bandit-auto-worse", [BAD], HELDOUT_EVEN, include_incumbent=False)
    final = done["metrics"]["final_evaluation"]
    assert final["best_resources"]["variant"] == "bad"  # the bandit's best, and worse than the incumbent
    assert final["gate"]["incumbent_passes"] == len(HELDOUT_EVEN) and final["gate"]["candidate_passes"] == 0
    assert final["gate"]["p_value"] == 1.0
    assert final["promoted"] is False and final["promotion"] is None
    config = await _agent_config(client, dev, agent["id"])
    assert config["system_prompt"] == BASE_PROMPT and "variant" not in config and "resources_version" not in config
    status = (await client.get("/api/v2/rl/auto-status", headers=dev)).json()["data"]
    trigger = next(t for t in status["recent_triggers"] if t["agent_id"] == agent["id"])
    assert trigger["outcome"] == "rejected"
