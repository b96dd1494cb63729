"""The online bandit on both backends: variant choice per task, learning from stored rewards through
the reward listener (each exactly once, the sweep taking the ones the listener missed), posteriors
that survive a restart, and one run through the real worker pool."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from agentlightning.agents.pool import WorkerPool
from agentlightning.agents.queue_sql import ClaimedTask
from agentlightning.agents.service import AgentService
from agentlightning.core.context import AppContext
from agentlightning.rl.optimisers import bandit_service
from agentlightning.rl.optimisers.bandit_service import (
    BanditListenerService,
    BanditService,
    assign_variant,
    install_reward_listener,
    remove_reward_listener,
)
from agentlightning.rollouts.listeners import RewardEvent, notify_reward_listeners
from agentlightning.rollouts.service import RolloutService
from agentlightning.storage.models import BanditObservation, Reward
from agentlightning.storage.types import utcnow
from tests.helpers import unique, wait_until
from tests.integration.agents.helpers import create_agent, wait_for_task
from tests.integration.optimisers.conftest import GOOD_MARKER

Login = Callable[[str], Awaitable[dict[str, str]]]
VARIANTS = [
    {"name": "good", "system_prompt": f"You are exact. {GOOD_MARKER}", "temperature": 0.0},
    {"name": "bad", "system_prompt": "You are vague.", "temperature": 1.2},
]
BANDIT = {"enabled": True, "include_incumbent": False}


def _claimed(profile: Any, context: dict[str, Any], task_id: int = 1) -> ClaimedTask:
    return ClaimedTask(
        id=task_id,
        description="What is six times seven?",
        context=context,
        session_id=None,
        priority="medium",
        attempts=1,
        max_attempts=3,
        lease_token="t",
        agent=profile,
    )


async def test_bandit_converges_online_and_survives_a_restart(
    ctx: AppContext, client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("bandit"), config={"bandit": BANDIT, "variants": VARIANTS})
    profile = await AgentService(ctx).profile(agent["id"])
    service = BanditService(ctx, rng=random.Random(11))
    outcome = random.Random(5)
    chosen: list[str] = []
    install_reward_listener(ctx)
    try:
        for i in range(80):
            task = await assign_variant(ctx, _claimed(profile, {"task_type": "maths"}, i), service=service)
            name = task.context["variant"]
            chosen.append(name)
            assert task.context["task_type"] == "maths"
            assert task.agent.system_prompt == next(v["system_prompt"] for v in VARIANTS if v["name"] == name)
            success = outcome.random() < (0.9 if name == "good" else 0.15)
            await _rewarded_rollout(ctx, agent["id"], name, 1.0 if success else 0.0)
    finally:
        remove_reward_listener(ctx)
    assert chosen[40:].count("good") >= 32  # most of the later pulls go to the better variant

    # A new service (as after a restart) reads the same posteriors from the table.
    arms = {a["variant"]: a for a in await BanditService(ctx).summary(agent["id"])}
    assert arms["good"]["pulls"] == chosen.count("good") and arms["bad"]["pulls"] == chosen.count("bad")
    assert arms["good"]["observations"] + arms["bad"]["observations"] == 80
    assert arms["good"]["posterior_mean"] > 0.75 > 0.4 > arms["bad"]["posterior_mean"]

    # The API shows the same, to any user who may read agents.
    user = await login("user")
    response = await client.get(f"/api/v2/agents/{agent['name']}/bandit", headers=user)
    assert response.status_code == 200, response.text
    state = response.json()["data"]
    assert state["enabled"] and state["posterior"] == "beta" and state["variants"] == ["bad", "good"]
    shown = {a["variant"]: a for a in state["arms"]}
    assert shown["good"]["pulls"] == arms["good"]["pulls"] and shown["good"]["task_type"] == "maths"
    assert (await client.get("/api/v2/agents/no-such-agent/bandit", headers=user)).status_code == 404
    assert (await client.get(f"/api/v2/agents/{agent['id']}/bandit")).status_code == 401


async def _rewarded_rollout(ctx: AppContext, agent_id: int, variant: str, value: float) -> str:
    """An SDK rollout of ``agent_id`` that ran ``variant`` on a maths task, with a stored reward
    (its listeners told, as every writer of rewards does)."""
    rollouts = RolloutService(ctx)
    rollout_id = await rollouts.start(
        source="sdk", owner="admin", agent_id=agent_id, metadata={"variant": variant, "task_type": "maths"}
    )
    await rollouts.add_reward(rollout_id, value, source="verifier", actor=None)
    return rollout_id


async def _observations(ctx: AppContext, agent_id: int) -> dict[str, int]:
    return {a["variant"]: a["observations"] for a in await BanditService(ctx).summary(agent_id)}


async def test_each_reward_is_learned_once_and_the_sweep_finds_the_missed_ones(
    ctx: AppContext, client: httpx.AsyncClient, login: Login, monkeypatch: Any
) -> None:
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("bandit"), config={"bandit": BANDIT, "variants": VARIANTS})
    install_reward_listener(ctx)
    try:
        heard = await _rewarded_rollout(ctx, agent["id"], "good", 1.0)
        assert await _observations(ctx, agent["id"]) == {"good": 1}
        # Told again (a retried notification), the listener learns nothing more.
        event = RewardEvent(heard, agent["id"], None, 1.0, "verifier", metadata={"variant": "good"})
        await notify_reward_listeners([event], scope=ctx)
        assert await _observations(ctx, agent["id"]) == {"good": 1}

        # The listener's write fails (the database restarting): the reward is stored, not learned.
        failing = BanditService._learn_once

        async def fail_once(self: BanditService, *args: Any) -> bool:
            monkeypatch.setattr(BanditService, "_learn_once", failing)
            raise ConnectionError("the database went away")

        monkeypatch.setattr(BanditService, "_learn_once", fail_once)
        await _rewarded_rollout(ctx, agent["id"], "bad", 0.0)
    finally:
        remove_reward_listener(ctx)
    # No listener at all (the process stopped right after storing the reward).
    await _rewarded_rollout(ctx, agent["id"], "bad", 0.0)
    assert await _observations(ctx, agent["id"]) == {"good": 1}

    sweeper = BanditListenerService(interval=3600)
    await sweeper.start(ctx)
    try:
        assert await sweeper.sweep() >= 2  # (and any other test's that no listener heard)
        assert await sweeper.sweep() == 0  # the next sweep finds nothing new
        assert (await sweeper.health())["recovered_rewards"] >= 2
    finally:
        await sweeper.stop()
    arms = {a["variant"]: a for a in await BanditService(ctx).summary(agent["id"])}
    assert arms["good"]["observations"] == 1 and arms["bad"]["observations"] == 2
    assert arms["bad"]["beta"] == 3.0 and arms["good"]["alpha"] == 2.0  # each reward counted once

    # A reward of an agent that runs no bandit is passed over for good, never taken into an arm.
    plain = await create_agent(client, admin, unique("plain"), config={"variants": VARIANTS})
    passed_over = await _rewarded_rollout(ctx, plain["id"], "good", 1.0)
    await BanditService(ctx).learn(since=utcnow() - timedelta(hours=1))
    async with ctx.db.session() as session:
        learned = await session.scalar(
            select(BanditObservation.learned)
            .join(Reward, Reward.id == BanditObservation.reward_id)
            .where(Reward.rollout_id == passed_over)
        )
    assert learned is False and await BanditService(ctx).summary(plain["id"]) == []

    # A sweep goes on past whole batches of rewards it passes over.
    monkeypatch.setattr(bandit_service, "LEARN_BATCH", 2)
    for _ in range(3):
        await _rewarded_rollout(ctx, plain["id"], "good", 1.0)
    await _rewarded_rollout(ctx, agent["id"], "good", 1.0)
    assert await BanditService(ctx).learn(since=utcnow() - timedelta(hours=1)) >= 1
    assert (await _observations(ctx, agent["id"]))["good"] == 2


async def test_forced_variants_and_agents_without_a_bandit(
    ctx: AppContext, client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("bandit"), config={"bandit": BANDIT, "variants": VARIANTS})
    profile = await AgentService(ctx).profile(agent["id"])
    task = await assign_variant(ctx, _claimed(profile, {"variant": "bad"}))
    assert task.context == {"variant": "bad", "task_type": "default"}
    assert task.agent.temperature == 1.2

    plain = await create_agent(client, admin, unique("plain"), config={"variants": VARIANTS})
    untouched = _claimed(await AgentService(ctx).profile(plain["id"]), {"task_type": "maths"})
    assert await assign_variant(ctx, untouched) is untouched
    assert await BanditService(ctx).summary(plain["id"]) == []


async def test_invalid_variant_declarations_are_refused(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    for config in (
        {"variants": [{"name": "a"}, {"name": "a"}]},
        {"variants": [{"name": "a", "temperature": 7}]},
        {"variants": [{"name": "a b"}]},
        {"bandit": {"enabled": True, "posterior": "laplace"}},
        {"variants": [{"name": "a", "tools": ["no_such_tool"]}]},
    ):
        response = await client.post(
            "/api/v2/agents", json={"name": unique("bad"), "type": "test_agent", "config": config}, headers=admin
        )
        assert response.status_code == 422, (config, response.text)


async def test_worker_runs_learn_the_better_variant(
    ctx: AppContext, client: httpx.AsyncClient, login: Login, pool: WorkerPool
) -> None:
    """Through the real worker pool: the variant is recorded on the rollout, the verifier's reward
    updates its arm, and the scripted model only answers right under the good variant's prompt."""
    admin = await login("admin")
    agent = await create_agent(
        client, admin, unique("bandit"), config={"bandit": BANDIT, "variants": VARIANTS, "cache": False}
    )
    context = {"task_type": "maths", "verifier": {"type": "numeric", "expected": 42}}
    ids = []
    for _ in range(12):
        response = await client.post(
            "/api/v2/agents/assign",
            json={"task": "What is six times seven?", "agent_id": agent["id"], "context": context},
            headers=admin,
        )
        assert response.status_code == 202, response.text
        ids.append(int(response.json()["task_id"]))
    tasks = await asyncio.gather(*(wait_for_task(client, admin, i, timeout=60) for i in ids))
    assert all(t["status"] == "completed" for t in tasks), tasks

    for task in tasks:
        response = await client.get(f"/api/v2/rollouts/task-{task['id']}", headers=admin)
        assert response.status_code == 200, response.text
        rollout = response.json()["data"]
        assert rollout["metadata"]["variant"] in ("good", "bad") and rollout["metadata"]["task_type"] == "maths"
        assert rollout["reward"] == (1.0 if rollout["metadata"]["variant"] == "good" else 0.0)

    # The listener hears each reward just after the task's outcome is stored: wait for the last ones.
    async def all_observed() -> bool:
        arms.clear()
        arms.update({a["variant"]: a for a in await BanditService(ctx).summary(agent["id"])})
        return sum(a["observations"] for a in arms.values()) >= 12

    arms: dict[str, dict[str, Any]] = {}
    await wait_until(all_observed, timeout=60, what="every reward reached its arm")
    assert sum(a["pulls"] for a in arms.values()) == 12
    assert sum(a["observations"] for a in arms.values()) == 12
    if "good" in arms and arms["good"]["observations"]:
        assert arms["good"]["alpha"] - 1 == arms["good"]["observations"]  # every good run succeeded
    if "bad" in arms and arms["bad"]["observations"]:
        assert arms["bad"]["beta"] - 1 == arms["bad"]["observations"]  # every bad run failed
