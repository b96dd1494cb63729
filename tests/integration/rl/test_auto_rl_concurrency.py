"""Auto-RL under concurrency, on both backends: a promotion never overwrites an edit of the agent
made during the run, two simultaneous manual triggers start exactly one run, and a plain user
can do nothing with Auto-RL on an agent (another user's: agents belong to the platform).

The scripted model and tasks are those of :mod:`tests.integration.rl.test_auto_rl`; the stub
optimiser here holds the run after reading the incumbent until the test lets it go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from statistics import mean
from typing import Any

import httpx
import pytest

from agentlightning.agents.schemas import AgentCreate, AgentUpdate
from agentlightning.agents.service import AgentService
from agentlightning.core.context import AppContext
from agentlightning.rl.auto.evaluator import resources_of
from agentlightning.rl.auto.gate import decide
from agentlightning.rl.auto.history import HistoryService
from agentlightning.rl.manager import ExperimentManager
from agentlightning.rl.optimisers.base import OPTIMISERS, Optimiser, OptimiserContext, OptimiserResult
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import poll_until_finished
from tests.integration.rl.helpers import auto_rl_settings, create_auto_rl_agent, retire_leftovers
from tests.integration.rl.test_auto_rl import BASE_PROMPT, HELDOUT_ODD, TRAIN, _script

#: Per test: set once the held run has read its incumbent; set by the test to let it go on.
HOLD: dict[str, asyncio.Event] = {}


class HeldOptimiser(Optimiser):
    """Appends ``options.marker`` to the prompt, after waiting for ``HOLD["release"]`` when ``options.hold``."""

    name = "apo"

    async def optimise(self, ctx: OptimiserContext) -> OptimiserResult:
        if ctx.config.get("hold"):
            HOLD["started"].set()
            await HOLD["release"].wait()
        candidate = ctx.incumbent.replace(system_prompt=f"{ctx.incumbent.system_prompt} {ctx.config['marker']}")
        score = mean(await ctx.evaluate(candidate, ctx.train_tasks))
        return OptimiserResult(best=candidate, best_score=score, incumbent_score=0.0, candidates=[])


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    """The scripted model for this module."""
    with FakeLLMServer(_script) as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], scripted_llm: FakeLLMServer, tmp_path: Any) -> Settings:
    """Fast manager; agents served by the scripted model."""
    return auto_rl_settings(settings_factory, scripted_llm.base_url, tmp_path)


@pytest.fixture(autouse=True)
def held_optimiser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The held stub stands in for ``apo`` in this module."""
    monkeypatch.setitem(OPTIMISERS, "apo", HeldOptimiser)


async def _agent_row(client: httpx.AsyncClient, headers: dict[str, str], agent_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v2/agents/{agent_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_an_edit_during_the_run_makes_the_promotion_refuse(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], manager: ExperimentManager
) -> None:
    HOLD.update(started=asyncio.Event(), release=asyncio.Event())
    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-edited-meanwhile", BASE_PROMPT)
    policy = {"options": {"marker": "GOOD", "hold": True, "train": TRAIN, "heldout": HELDOUT_ODD}}
    assert (await client.put(f"/api/v2/rl/auto-policies/{agent['id']}", json=policy, headers=dev)).status_code == 200
    started = await client.post("/api/v2/rl/auto-trigger", json={"agent_id": agent["id"]}, headers=dev)
    assert started.status_code == 202, started.text
    trigger = started.json()["data"]
    await asyncio.wait_for(HOLD["started"].wait(), timeout=60)

    # The run has read the incumbent; a developer edits the agent now (not its resources_version).
    edited = await client.put(
        f"/api/v2/agents/{agent['id']}", json={"config": {"system_prompt": "EDITED BY HAND"}}, headers=dev
    )
    assert edited.status_code == 200, edited.text
    HOLD["release"].set()

    url = f"/api/v2/rl/experiments/{trigger['experiment_id']}"
    done = await poll_until_finished(client, dev, url, ("completed", "failed", "stopped"), 120.0, 0.1, "experiment")
    assert done["status"] == "completed", done["error"]
    final = done["metrics"]["final_evaluation"]
    assert final["gate"]["promote"] is True  # the candidate did win on the held-out tasks ...
    assert final["promoted"] is False and final["promotion"] is None  # ... and was not laid over the edit
    assert final["refused"]["code"] == "RESOURCES_CHANGED" and "changed" in final["reason"]
    row = await _agent_row(client, dev, agent["id"])
    assert row["config"]["system_prompt"] == "EDITED BY HAND" and "resources_version" not in row["config"]
    status = (await client.get("/api/v2/rl/auto-status", headers=dev)).json()["data"]
    mine = next(a for a in status["agents"] if a["agent_id"] == agent["id"])
    assert mine["promotions"] == 0
    ended = next(t for t in status["recent_triggers"] if t["id"] == trigger["id"])
    assert ended["outcome"] == "rejected" and ended["decision"]["refused"]["code"] == "RESOURCES_CHANGED"
    assert "not promoted" in ended["decision"]["reason"]


async def test_a_promotion_racing_an_edit_never_loses_either(ctx: AppContext) -> None:
    """The promotion's check-and-write against a concurrent ``AgentService.update``: whichever lands
    first, the edit survives, and a promotion reported as made is in the agent's row."""
    agents = AgentService(ctx)
    history = HistoryService(ctx)
    win = decide([0.0] * 8, [1.0] * 8, alpha=0.05)
    outcomes = []
    for attempt in range(6):
        created = await agents.create(
            AgentCreate.model_validate(
                {"name": f"race-promote-{attempt}", "type": "math", "config": {"system_prompt": BASE_PROMPT}}
            )
        )
        agent_id = created["id"]
        start = created["config_version"]
        profile = await agents.profile(agent_id)
        candidate = resources_of(profile).replace(system_prompt=f"{BASE_PROMPT} GOOD")
        promoted, edited = await asyncio.gather(
            history.promote(
                agent_id,
                candidate,
                win,
                expected_config_version=start,
                experiment_id=None,
                trigger_id=None,
                actor="test",
            ),
            agents.update(agent_id, AgentUpdate(config={"temperature": 0.3})),
            return_exceptions=True,
        )
        assert not isinstance(edited, BaseException), edited  # the edit always succeeds
        final = (await agents.profile(agent_id)).config
        assert final["temperature"] == 0.3  # the edit is never lost
        if isinstance(promoted, BaseException):
            assert getattr(promoted, "code", None) == "RESOURCES_CHANGED", promoted
            assert final["system_prompt"] == BASE_PROMPT and "resources_version" not in final
            assert await history.gain_in_force(agent_id) is None  # no history row for a refused promotion
            outcomes.append("refused")
        else:
            assert final["system_prompt"] == f"{BASE_PROMPT} GOOD" and final["resources_version"] == 2
            assert (await agents.get(agent_id)).config_version == start + 2
            outcomes.append("promoted")
    assert outcomes  # both orders are valid; which one happened is the scheduler's choice


async def test_two_simultaneous_triggers_start_exactly_one_run(
    client: httpx.AsyncClient, ctx: AppContext, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    await retire_leftovers(ctx)
    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-double-trigger", BASE_PROMPT)
    body = {"agent_id": agent["id"]}
    responses = await asyncio.gather(
        *(client.post("/api/v2/rl/auto-trigger", json=body, headers=dev) for _ in range(4))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [202, 409, 409, 409], [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        error = refused.json()["error"]
        assert error["code"] == "AUTO_RL_RUNNING" and error["details"]["agent_id"] == agent["id"]
        assert refused.json()["success"] is False
    status = (await client.get("/api/v2/rl/auto-status", headers=dev)).json()["data"]
    mine = next(a for a in status["agents"] if a["agent_id"] == agent["id"])
    assert mine["triggers"] == 1 and mine["running"] == 1
    experiments = (await client.get("/api/v2/rl/experiments", params={"limit": 500}, headers=dev)).json()["data"]
    items = experiments["items"] if isinstance(experiments, dict) else experiments
    assert sum(1 for e in items if e.get("agent_id") == agent["id"]) == 1
    # Once that run ends, the agent can be triggered again.
    winner = next(r for r in responses if r.status_code == 202).json()["data"]
    assert (await client.post(f"/api/v2/rl/experiments/{winner['experiment_id']}/stop", headers=dev)).status_code == 202
    again = await client.post("/api/v2/rl/auto-trigger", json=body, headers=dev)
    assert again.status_code == 202, again.text
    await client.post(f"/api/v2/rl/experiments/{again.json()['data']['experiment_id']}/stop", headers=dev)
    await retire_leftovers(ctx)


async def test_a_plain_user_can_do_nothing_with_auto_rl_on_an_agent(
    client: httpx.AsyncClient, ctx: AppContext, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    """An agent a developer made and promoted: a plain user (token or API key) may not trigger, roll
    back, read or change its policy, or read the status; nothing changes underneath."""
    dev = await login("developer")
    agent = await create_auto_rl_agent(client, dev, "auto-rl-not-yours", BASE_PROMPT)
    agent_id = agent["id"]
    # A promotion in force, so that a rollback would have something to undo.
    profile = await AgentService(ctx).profile(agent_id)
    candidate = resources_of(profile).replace(system_prompt=f"{BASE_PROMPT} GOOD")
    await HistoryService(ctx).promote(
        agent_id,
        candidate,
        decide([0.0] * 8, [1.0] * 8, alpha=0.05),
        expected_config_version=profile.config_version,
        experiment_id=None,
        trigger_id=None,
        actor="dev",
    )
    before = await _agent_row(client, dev, agent_id)

    user = await login("user")
    key = await client.post("/auth/api-keys", json={"name": "user-key"}, headers=user)
    assert key.status_code == 201, key.text
    for headers in (user, {"X-API-Key": key.json()["data"]["key"]}):
        calls = [
            client.post("/api/v2/rl/auto-trigger", json={"agent_id": agent_id}, headers=headers),
            client.post("/api/v2/rl/auto-trigger", json={"agent_id": agent_id, "algorithm": "bandit"}, headers=headers),
            client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent_id}, headers=headers),
            client.get(f"/api/v2/rl/auto-policies/{agent_id}", headers=headers),
            client.put(f"/api/v2/rl/auto-policies/{agent_id}", json={"enabled": False}, headers=headers),
            client.get("/api/v2/rl/auto-status", headers=headers),
            client.post(
                "/api/v2/rl/experiments",
                json={"name": "sneaky", "algorithm": "apo", "agent_id": agent_id},
                headers=headers,
            ),
        ]
        for response in await asyncio.gather(*calls):
            assert response.status_code == 403, (response.request.url, response.text)
            assert response.json()["error"]["code"] == "FORBIDDEN"
    # Nobody anonymous either.
    assert (await client.post("/api/v2/rl/auto-rollback", json={"agent_id": agent_id})).status_code == 401
    after = await _agent_row(client, dev, agent_id)
    assert after["config"] == before["config"] and after["config_version"] == before["config_version"]
    policy = (await client.get(f"/api/v2/rl/auto-policies/{agent_id}", headers=dev)).json()["data"]
    assert policy["overrides"] == []
    status = (await client.get("/api/v2/rl/auto-status", headers=dev)).json()["data"]
    mine = next(a for a in status["agents"] if a["agent_id"] == agent_id)
    assert mine["triggers"] == 0 and mine["promotions"] == 1 and mine["rollbacks"] == 0


async def test_concurrent_agent_edits_both_land(ctx: AppContext) -> None:
    """Edits of different keys at the same moment both survive (the update is a compare-and-set,
    so on SQLite, whose reads take no lock, the later writer merges into the earlier one's row)."""
    agents = AgentService(ctx)
    created = await agents.create(
        AgentCreate.model_validate({"name": "race-edits", "type": "math", "config": {"system_prompt": BASE_PROMPT}})
    )
    edits = [{"temperature": 0.3}, {"max_tokens": 77}, {"memory_window": 5}, {"max_steps": 3}]
    await asyncio.gather(*(agents.update(created["id"], AgentUpdate(config=edit)) for edit in edits))
    row = await agents.get(created["id"])
    for edit in edits:
        for key, value in edit.items():
            assert row.config[key] == value, row.config
    assert row.config_version == created["config_version"] + len(edits)
