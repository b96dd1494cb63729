"""Every task run is a rollout: spans of its LLM and tool calls, the verifier's reward, user
feedback, listeners; on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from agentlightning.agents.pool import WorkerPool
from agentlightning.core.context import AppContext
from agentlightning.rollouts.listeners import RewardEvent, register_reward_listener, unregister_reward_listener
from agentlightning.rollouts.service import RolloutService
from agentlightning.rollouts.verifiers import register_verifier
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task

Login = Callable[[str], Awaitable[dict[str, str]]]


@register_verifier("ends_with_7168")
def _ends_with_7168(output: str, options: Any) -> bool:
    return output.rstrip("}").rstrip().endswith("7168")


async def _assign(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> int:
    response = await client.post("/api/v2/agents/assign", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return int(response.json()["task_id"])


async def test_task_run_is_a_rollout_with_llm_and_tool_spans_and_verifier_reward(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, fake_llm: FakeLLMServer, ctx: AppContext
) -> None:
    heard: list[RewardEvent] = []

    async def listener(event: RewardEvent) -> None:
        heard.append(event)

    register_reward_listener(listener)
    try:
        agent = await create_agent(client, admin, unique("calc"), config={"tools": ["calculator"], "cache": False})
        tag = unique("run")
        task_id = await _assign(
            client,
            admin,
            task="calculate: (3 + 4) * 2 ** 10",
            agent_id=agent["id"],
            context={
                "verifier": {"type": "numeric", "expected": 7168, "tolerance": 0.5},
                "variant": "B",
                "task_type": "math",
                "rollout_parent_id": "wf-run-1",
                "tag": tag,
            },
        )
        task = await wait_for_task(client, admin, task_id)
        assert task["status"] == "completed", task
        response = await client.get(f"/api/v2/rollouts/task-{task_id}", headers=admin)
        assert response.status_code == 200, response.text
        rollout = response.json()["data"]
        assert rollout["source"] == "task" and rollout["status"] == "completed"
        assert rollout["task_id"] == task_id and rollout["agent_id"] == agent["id"]
        assert rollout["parent_id"] == "wf-run-1"
        assert rollout["metadata"]["variant"] == "B" and rollout["metadata"]["task_type"] == "math"
        assert rollout["reward"] == 1.0 and rollout["ended_at"] is not None
        assert "7168" in rollout["output"]["answer"]
        kinds = [s["kind"] for s in rollout["spans"]]
        assert kinds.count("agent_run") == 1 and kinds.count("llm") == 2 and kinds.count("tool") == 1
        assert all(s["rollout_id"] == rollout["id"] for s in rollout["spans"])
        llm = next(s for s in rollout["spans"] if s["kind"] == "llm")
        assert llm["input"]["messages"] and llm["model"] and llm["prompt_tokens"] > 0 and llm["latency_ms"] > 0
        tool = next(s for s in rollout["spans"] if s["kind"] == "tool")
        assert tool["input"]["arguments"] and tool["output"]["result"] == 7168
        [reward] = rollout["rewards"]
        assert reward["source"] == "verifier" and reward["value"] == 1.0 and reward["details"]["passed"] is True
        # The model never saw the verifier (its expected answer) nor the platform's keys.
        prompts = [str(r["messages"]) for r in fake_llm.requests if tag in str(r["messages"])]
        assert prompts and all("verifier" not in p and "wf-run-1" not in p for p in prompts)
        # Nor the bandit's labels; the task's own context keys (``tag``) are still shown.
        assert all('"variant"' not in p and '"task_type"' not in p for p in prompts)
        deadline = asyncio.get_running_loop().time() + 10
        while not any(e.rollout_id == rollout["id"] for e in heard):
            assert asyncio.get_running_loop().time() < deadline, heard
            await asyncio.sleep(0.02)
        event = next(e for e in heard if e.rollout_id == rollout["id"])
        assert event.source == "verifier" and event.value == 1.0 and event.task_id == task_id
        assert event.agent_id == agent["id"] and event.metadata["variant"] == "B"
        stats = await RolloutService(ctx).window_stats(agent["id"], 10)
        assert stats["n"] == 1 and stats["success_rate"] == 1.0 and stats["mean_reward"] == 1.0
    finally:
        unregister_reward_listener(listener)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "exact", "expected": "nope"}, 0.0),
        ({"type": "contains", "expected": ["Answer", "absent"], "all": True}, 0.5),
        ({"type": "regex", "pattern": r"^Answer: \w+"}, 1.0),
        ({"type": "json_schema", "schema": {"type": "object"}}, 0.0),
        ({"type": "python", "name": "ends_with_7168"}, 0.0),
    ],
)
async def test_each_verifier_type_rewards_a_task(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, spec: dict[str, Any], expected: float
) -> None:
    agent = await create_agent(client, admin, unique("verify"), config={"cache": False})
    task_id = await _assign(client, admin, task="hello there", agent_id=agent["id"], context={"verifier": spec})
    assert (await wait_for_task(client, admin, task_id))["status"] == "completed"
    rollout = (await client.get(f"/api/v2/rollouts/task-{task_id}", headers=admin)).json()["data"]
    assert rollout["reward"] == pytest.approx(expected)
    assert [r["source"] for r in rollout["rewards"]] == ["verifier"]


@pytest.mark.parametrize(
    ("verifier", "field"),
    [
        ({"type": "telepathy"}, "body.context.verifier"),
        ({"type": "regex", "pattern": "(unclosed"}, "body.context.verifier.pattern"),
        ({"type": "python", "name": "not_registered"}, "body.context.verifier.name"),
        ({"type": "python", "name": "x", "code": "import os"}, "body.context.verifier"),
        ({"type": "json_schema", "schema": {"type": 12}}, "body.context.verifier.schema"),
        ({"type": "numeric"}, "body.context.verifier"),
        ("exact", "body.context.verifier"),
    ],
)
async def test_invalid_verifier_is_refused_at_assign(
    client: httpx.AsyncClient, admin: dict[str, str], verifier: Any, field: str
) -> None:
    agent = await create_agent(client, admin, unique("badverify"))
    response = await client.post(
        "/api/v2/agents/assign",
        json={"task": "x", "agent_id": agent["id"], "context": {"verifier": verifier}},
        headers=admin,
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert any(e["field"].startswith(field) for e in body["error"]["details"]["errors"]), body


async def test_failed_task_rollout_and_feedback(
    client: httpx.AsyncClient, login: Login, pool: WorkerPool, ctx: AppContext
) -> None:
    developer = await login("developer")
    alice, bob = await login("user"), await login("user")
    with FakeLLMServer(fail_first=100) as broken:
        agent = await create_agent(
            client,
            developer,
            unique("broken"),
            config={"base_url": broken.base_url, "api_key": "agent-own-key", "cache": False},
        )
        task_id = await _assign(client, alice, task="will fail", agent_id=agent["id"])
        task = await wait_for_task(client, alice, task_id, timeout=60)
    assert task["status"] == "failed"
    rollout = (await client.get(f"/api/v2/rollouts/task-{task_id}", headers=alice)).json()["data"]
    assert rollout["status"] == "failed" and rollout["output"]["error"]
    assert rollout["spans"] and all(s["rollout_id"] == rollout["id"] for s in rollout["spans"])
    # Feedback: the task's owner may give it; another plain user may not even see the task.
    refused = await client.post(f"/api/v2/tasks/{task_id}/feedback", json={"score": 1.0}, headers=bob)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "TASK_NOT_FOUND"
    given = await client.post(
        f"/api/v2/tasks/{task_id}/feedback", json={"score": 0.0, "comment": "never answered"}, headers=alice
    )
    assert given.status_code == 201, given.text
    assert given.json()["data"]["source"] == "feedback" and given.json()["data"]["comment"] == "never answered"
    rollout = (await client.get(f"/api/v2/rollouts/task-{task_id}", headers=alice)).json()["data"]
    assert rollout["reward"] == 0.0 and [r["source"] for r in rollout["rewards"]] == ["feedback"]
    # Bob cannot read, list or reward Alice's rollout either.
    assert (await client.get(f"/api/v2/rollouts/task-{task_id}", headers=bob)).status_code == 404
    listed = (await client.get("/api/v2/rollouts", params={"task_id": task_id}, headers=bob)).json()["data"]
    assert listed["total"] == 0
    reward = await client.post(f"/api/v2/rollouts/task-{task_id}/rewards", json={"value": 1}, headers=bob)
    assert reward.status_code == 404
    # The developer sees it.
    listed = (await client.get("/api/v2/rollouts", params={"task_id": task_id}, headers=developer)).json()["data"]
    assert listed["total"] == 1
    stats = await RolloutService(ctx).window_stats(agent["id"], 5)
    assert stats["n"] == 1 and stats["success_rate"] == 0.0


async def test_feedback_needs_a_finished_task_and_a_valid_score(client: httpx.AsyncClient, login: Login) -> None:
    developer = await login("developer")
    user = await login("user")
    agent = await create_agent(client, developer, unique("idle"), status="paused")
    task_id = await _assign(client, user, task="queued forever", agent_id=agent["id"])
    pending = await client.post(f"/api/v2/tasks/{task_id}/feedback", json={"score": 1}, headers=user)
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "TASK_NOT_FINISHED"
    for bad in ({"score": 1.5}, {"score": -0.1}, {"score": "good"}, {}, {"score": 1, "extra": 1}):
        response = await client.post(f"/api/v2/tasks/{task_id}/feedback", json=bad, headers=user)
        assert response.status_code == 422, (bad, response.text)
    missing = await client.post("/api/v2/tasks/2147483647/feedback", json={"score": 1}, headers=user)
    assert missing.status_code == 404
    # A cancelled task (no run, so no rollout yet) gets one with the feedback.
    assert (await client.post(f"/api/v2/tasks/{task_id}/cancel", headers=user)).status_code == 200
    given = await client.post(f"/api/v2/tasks/{task_id}/feedback", json={"score": 0.25}, headers=user)
    assert given.status_code == 201, given.text
    rollout = (await client.get(f"/api/v2/rollouts/task-{task_id}", headers=user)).json()["data"]
    assert rollout["status"] == "failed" and rollout["reward"] == 0.25


async def test_a_task_failed_by_the_reaper_gets_its_failed_rollout(
    client: httpx.AsyncClient, admin: dict[str, str], ctx: AppContext
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from agentlightning.agents.scheduler import TaskScheduler
    from agentlightning.storage.models import Task
    from agentlightning.storage.types import utcnow

    agent = await create_agent(client, admin, unique("reaped"), config={"max_concurrency": 50})
    scheduler = TaskScheduler(ctx)
    task, _ = await scheduler.assign(task="my worker dies", agent_id=agent["id"], context={"variant": "A"})
    async with ctx.db.session() as s:
        await s.execute(update(Task).where(Task.id == task["id"]).values(max_attempts=1))
        await s.commit()
    claimed: list[Any] = []
    while not any(c.id == task["id"] for c in claimed):
        claimed = await scheduler.claim("dying", 50)
        assert claimed
    async with ctx.db.session() as s:
        await s.execute(
            update(Task).where(Task.id == task["id"]).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        await s.commit()
    _, failed = await scheduler.reap_expired()
    assert any(f["task_id"] == task["id"] for f in failed)
    rollout = await RolloutService(ctx).get(None, f"task-{task['id']}")
    assert rollout["status"] == "failed" and "lease expired" in rollout["output"]["error"]
    assert rollout["metadata"]["variant"] == "A" and rollout["owner"] is None
