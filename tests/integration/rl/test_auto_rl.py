"""Auto-RL end to end on both backends, with a scripted LLM and a stub optimiser registered as ``apo``.

The scripted "model" answers ``What is A + B?`` from the agent's system prompt: with ``GOOD`` in
it always right, with ``BAD`` always wrong (off by one), otherwise right only when the sum is even.
The stub optimiser appends ``options.marker`` to the prompt, so a test picks whether the candidate
is better or worse than the incumbent.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from statistics import mean
from typing import Any

import httpx
import pytest

from agentlightning.core.context import AppContext
from agentlightning.observability.metrics import RL_PERFORMANCE_GAIN
from agentlightning.rl.auto.monitor import AutoRLMonitor
from agentlightning.rl.manager import ExperimentManager
from agentlightning.rl.optimisers.base import OPTIMISERS, Optimiser, OptimiserContext, OptimiserResult
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import poll_until_finished
from tests.integration.rl.helpers import auto_rl_settings, create_auto_rl_agent, retire_leftovers

BASE_PROMPT = "You add two numbers."
_SUM = re.compile(r"What is (\d+) \+ (\d+)\?")


def _script(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages", [])
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    match = _SUM.search(str(user))
    if not match:
        return {"content": "Keep the prompt as it is."}
    total = int(match.group(1)) + int(match.group(2))
    if "GOOD" in system:
        answer = total
    elif "BAD" in system:
        answer = total + 1
    else:
        answer = total if total % 2 == 0 else total + 1
    return {"content": f"The answer is {answer}"}


def _task(i: int, a: int, b: int) -> dict[str, Any]:
    return {
        "id": f"sum-{i}",
        "prompt": f"What is {a} + {b}?",
        "verifier": {"type": "numeric", "expected": a + b, "tolerance": 0},
        "task_type": "arithmetic",
    }


#: Training tasks (mixed parity) and held-out tasks whose sums are odd (the incumbent fails them all).
TRAIN = [_task(i, i, i + 1 + (i % 2)) for i in range(6)]
HELDOUT_ODD = [_task(100 + i, i, i + 1) for i in range(12)]
HELDOUT_EVEN = [_task(200 + i, i, i + 2) for i in range(12)]


#: Runs (by work directory) that already blocked once, and a signal that one is blocking now.
BLOCKED: set[str] = set()
STARTED: list[asyncio.Event] = []
#: The critics the stub consulted (each run asks its critic once, as APO does).
CRITICS: list[Any] = []


class StubOptimiser(Optimiser):
    """Proposes the incumbent's prompt plus ``options.marker`` and scores both on the training tasks."""

    name = "apo"

    async def optimise(self, ctx: OptimiserContext) -> OptimiserResult:
        if ctx.config.get("block_first") and str(ctx.workdir) not in BLOCKED:
            BLOCKED.add(str(ctx.workdir))  # the first attempt runs until the server stops it
            STARTED[0].set()
            while not ctx.should_stop():
                await asyncio.sleep(0.05)
        assert await ctx.critic([{"role": "user", "content": "Improve this prompt."}])
        CRITICS.append(ctx.critic)
        candidate = ctx.incumbent.replace(system_prompt=f"{ctx.incumbent.system_prompt} {ctx.config['marker']}")
        if "tools" in ctx.config:  # a candidate that also changes the agent's tools (as APO's tool edits)
            candidate = candidate.replace(tools=tuple(ctx.config["tools"]))
        incumbent_score = mean(await ctx.evaluate(ctx.incumbent, ctx.train_tasks))
        await ctx.report(0, {"reward": incumbent_score})
        score = mean(await ctx.evaluate(candidate, ctx.train_tasks))
        await ctx.report(1, {"reward": score})
        return OptimiserResult(
            best=candidate,
            best_score=score,
            incumbent_score=incumbent_score,
            candidates=[{"round": 1, "resources": candidate.as_dict(), "score": score}],
        )


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    """The scripted model for this module."""
    with FakeLLMServer(_script) as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], scripted_llm: FakeLLMServer, tmp_path: Any) -> Settings:
    """Fast manager and monitor; agents served by the scripted model."""
    return auto_rl_settings(settings_factory, scripted_llm.base_url, tmp_path, auto_rl_poll_seconds=0.2)


@pytest.fixture(autouse=True)
def stub_optimiser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stub stands in for ``apo`` in this module."""
    monkeypatch.setitem(OPTIMISERS, "apo", StubOptimiser)


async def _wait_experiment(
    client: httpx.AsyncClient, headers: dict[str, str], experiment_id: int, timeout: float = 120.0
) -> dict[str, Any]:
    url = f"/api/v2/rl/experiments/{experiment_id}"
    finished = ("completed", "failed", "stopped")
    return await poll_until_finished(client, headers, url, finished, timeout, 0.1, f"experiment {experiment_id}")


async def _optimise(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    agent_id: int,
    name: str,
    marker: str,
    heldout: list[Any],
    **options: Any,
) -> dict[str, Any]:
    body = {
        "name": name,
        "algorithm": "apo",
        "agent_id": agent_id,
        "config": {"train": TRAIN, "heldout": heldout, "options": {"marker": marker, **options}, "alpha": 0.05},
    }
    response = await client.post("/api/v2/rl/experiments", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    assert created["kind"] == "agent" and created["status"] == "queued"
    return await _wait_experiment(client, headers, created["id"])


async def _agent_config(client: httpx.AsyncClient, headers: dict[str, str], agent_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v2/agents/{agent_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]["config"]


async def test_a_significant_win_is_promoted_and_rolled_back(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], manager: ExperimentManager
) -> None:
    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-better", BASE_PROMPT)
    done = await _optimise(client, dev, agent["id"], "better-apo", "GOOD", HELDOUT_ODD, tools=["calculator"])
    assert done["status"] == "completed", done["error"]
    final = done["metrics"]["final_evaluation"]
    assert final["promoted"] is True, final
    gate = final["gate"]
    assert gate["test"] == "mcnemar-exact-one-sided"
    assert gate["incumbent_passes"] == 0 and gate["candidate_passes"] == 12 and gate["p_value"] < 0.001
    assert final["best_resources"]["system_prompt"] == f"{BASE_PROMPT} GOOD"
    assert set(final["heldout_tasks"]).isdisjoint(final["train_tasks"])
    # The run's LLM clients (the evaluator's, which the critic shares) were closed when it ended.
    assert CRITICS and CRITICS[-1].providers.open_providers == 0
    # Every candidate and the progress are in the streamed metric points.
    points = (await client.get(f"/api/v2/rl/experiments/{done['id']}/metrics", headers=dev)).json()["data"]["items"]
    assert any(p["kind"] == "evaluation" and p.get("candidate") == 0 for p in points)
    assert any(p["kind"] == "progress" and "reward" in p for p in points)

    config = await _agent_config(client, dev, agent["id"])
    assert config["system_prompt"] == f"{BASE_PROMPT} GOOD" and config["resources_version"] == 2
    assert config["tools"] == ["calculator"]  # the candidate's tools are promoted with its prompt
    assert RL_PERFORMANCE_GAIN.labels(agent_id=str(agent["id"]))._value.get() == pytest.approx(100.0)
    scrape = (await client.get("/metrics")).text  # the spec's metric carries the promotion's gain
    assert f'rl_performance_gain_percent{{agent_id="{agent["id"]}"}} 100.0' in scrape

    # A plain user may neither roll back nor trigger.
    user = await login("user")
    refused = await client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent["id"]}, headers=user)
    assert refused.status_code == 403
    assert (
        await client.post("/api/v2/rl/auto-trigger", json={"agent_id": agent["id"]}, headers=user)
    ).status_code == 403

    rolled = await client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent["id"]}, headers=dev)
    assert rolled.status_code == 200, rolled.text
    change = rolled.json()["data"]
    assert change["kind"] == "rollback" and change["after"]["system_prompt"] == BASE_PROMPT
    config = await _agent_config(client, dev, agent["id"])
    assert config["system_prompt"] == BASE_PROMPT and config["resources_version"] == 3
    assert "tools" not in config  # the agent's own tool list again
    # Nothing left to roll back.
    again = await client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent["id"]}, headers=dev)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NO_PROMOTION_TO_ROLL_BACK"


async def test_a_worse_candidate_is_never_promoted(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], manager: ExperimentManager
) -> None:
    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-worse", BASE_PROMPT)
    done = await _optimise(client, dev, agent["id"], "worse-apo", "BAD", HELDOUT_EVEN)
    assert done["status"] == "completed", done["error"]
    final = done["metrics"]["final_evaluation"]
    assert final["promoted"] is False
    assert final["gate"]["incumbent_passes"] == 12 and final["gate"]["candidate_passes"] == 0
    assert final["gate"]["p_value"] == 1.0
    config = await _agent_config(client, dev, agent["id"])
    assert config["system_prompt"] == BASE_PROMPT and "resources_version" not in config


async def test_the_monitor_triggers_by_itself_on_a_low_success_rate(
    client: httpx.AsyncClient,
    ctx: AppContext,
    login: Callable[[str], Awaitable[dict[str, str]]],
    manager: ExperimentManager,
) -> None:
    from agentlightning.rollouts.service import RolloutService

    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-monitored", BASE_PROMPT)
    agent_id = agent["id"]
    policy = {
        "window": 10,
        "min_samples": 8,
        "success_threshold": 0.6,
        "cooldown_minutes": 60,
        # Inline tasks instead of the suite (the scripted model only adds numbers); the rest is the optimiser's.
        "options": {"marker": "GOOD", "train": TRAIN, "heldout": HELDOUT_ODD},
    }
    response = await client.put(f"/api/v2/rl/auto-policies/{agent_id}", json=policy, headers=dev)
    assert response.status_code == 200, response.text
    assert set(response.json()["data"]["overrides"]) >= {"window", "min_samples", "success_threshold"}
    rollouts = RolloutService(ctx)
    for i in range(10):
        rollout_id = await rollouts.start(source="sdk", owner="tester", agent_id=agent_id)
        await rollouts.add_reward(rollout_id, 1.0 if i < 3 else 0.0, source="sdk", actor="tester")
        await rollouts.finish(rollout_id)

    monitor = AutoRLMonitor(ctx.settings)
    await monitor.start(ctx)
    ctx.services["auto_rl"] = monitor
    try:
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            status = (await client.get("/api/v2/rl/auto-status", headers=dev)).json()["data"]
            row = next(a for a in status["agents"] if a["agent_id"] == agent_id)
            if row["finished"] >= 1:
                break
            assert asyncio.get_running_loop().time() < deadline, status
            await asyncio.sleep(0.2)
    finally:
        ctx.services.pop("auto_rl", None)
        await monitor.stop()
    assert row["n"] == 10 and row["success_rate"] == pytest.approx(0.3)
    assert row["triggers"] == 1 and row["promotions"] == 1 and row["gain_pp"] is not None
    trigger = next(t for t in status["recent_triggers"] if t["agent_id"] == agent_id)
    assert trigger["reason"] == "monitor" and trigger["outcome"] == "promoted"
    assert status["monitor"]["leader"] is True
    assert status["success_rate"] is not None and status["promotions"] >= 1
    # The cooldown holds: another round does not trigger again.
    assert await monitor.check() == []


async def test_auto_rl_inputs_and_permissions(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    dev = await login("developer")
    user = await login("user")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-inputs", BASE_PROMPT)
    assert (await client.get("/api/v2/rl/auto-status", headers=user)).status_code == 403
    assert (await client.get(f"/api/v2/rl/auto-policies/{agent['id']}", headers=user)).status_code == 403
    assert (
        await client.put(f"/api/v2/rl/auto-policies/{agent['id']}", json={"min_samples": 1}, headers=user)
    ).status_code == 403
    bad = await client.put(f"/api/v2/rl/auto-policies/{agent['id']}", json={"success_threshold": 2}, headers=dev)
    assert bad.status_code == 422
    unknown = await client.put(f"/api/v2/rl/auto-policies/{agent['id']}", json={"algorithm": "ppo"}, headers=dev)
    assert unknown.status_code == 422
    missing = await client.post("/api/v2/rl/auto-trigger", json={"agent_id": 999999}, headers=dev)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "AGENT_NOT_FOUND"
    no_agent = await client.post("/api/v2/rl/experiments", json={"name": "x", "algorithm": "apo"}, headers=dev)
    assert no_agent.status_code == 422
    assert any(e["field"].endswith("agent_id") for e in no_agent.json()["error"]["details"]["errors"])
    half = await client.post(
        "/api/v2/rl/experiments",
        json={"name": "half", "algorithm": "apo", "agent_id": agent["id"], "config": {"train": TRAIN}},
        headers=dev,
    )
    assert half.status_code == 422
    policy = (await client.get(f"/api/v2/rl/auto-policies/{agent['id']}", headers=dev)).json()["data"]
    assert policy["alpha"] == 0.05 and policy["overrides"] == []
    # A manual trigger starts one run; a second while it is in flight is refused.
    first = await client.post("/api/v2/rl/auto-trigger", json={"agent_id": agent["id"]}, headers=dev)
    assert first.status_code == 202, first.text
    assert first.json()["data"]["reason"] == "manual" and first.json()["data"]["experiment_id"]
    second = await client.post("/api/v2/rl/auto-trigger", json={"agent_id": agent["id"]}, headers=dev)
    assert second.status_code == 409 and second.json()["error"]["code"] == "AUTO_RL_RUNNING"
    stopped = await client.post(f"/api/v2/rl/experiments/{first.json()['data']['experiment_id']}/stop", headers=dev)
    assert stopped.status_code == 202


async def test_an_optimisation_interrupted_by_a_shutdown_runs_again_from_the_start(
    client: httpx.AsyncClient, ctx: AppContext, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    await retire_leftovers(ctx)
    STARTED[:] = [asyncio.Event()]  # bound to this test's loop
    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-restart", BASE_PROMPT)
    body = {
        "name": "restart-apo",
        "algorithm": "apo",
        "agent_id": agent["id"],
        "config": {"train": TRAIN, "heldout": HELDOUT_ODD, "options": {"marker": "GOOD", "block_first": True}},
    }
    created = (await client.post("/api/v2/rl/experiments", json=body, headers=dev)).json()["data"]
    first = ExperimentManager(ctx.settings)
    await first.start(ctx)
    try:
        await asyncio.wait_for(STARTED[0].wait(), timeout=60)
    finally:
        await first.stop()  # the server shuts down mid-run: the experiment goes back to the queue
    queued = (await client.get(f"/api/v2/rl/experiments/{created['id']}", headers=dev)).json()["data"]
    assert queued["status"] == "queued", queued
    second = ExperimentManager(ctx.settings)
    await second.start(ctx)
    try:
        done = await _wait_experiment(client, dev, created["id"])
    finally:
        await second.stop()
        await retire_leftovers(ctx)
    assert done["status"] == "completed" and done["attempts"] == 2, done
    assert done["metrics"]["final_evaluation"]["promoted"] is True
    assert (await _agent_config(client, dev, agent["id"]))["resources_version"] == 2


async def test_one_monitor_acts_across_replicas(ctx: AppContext) -> None:
    one = AutoRLMonitor(ctx.settings, instance_id="replica-1")
    two = AutoRLMonitor(ctx.settings, instance_id="replica-2")
    one._ctx = two._ctx = ctx  # the lease alone, without the loops
    assert await one.acquire() is True
    assert await two.acquire() is False
    assert await one.acquire() is True  # renewing is fine
    assert await two.tick() == []  # a replica without the lease does nothing
    await one.stop()  # hands the lease back
    assert await two.acquire() is True and two.leader
    await two.stop()
