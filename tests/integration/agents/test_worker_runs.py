"""Tasks really run: worker pool + runtime + tools + the scripted OpenAI-compatible server,
on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from agentlightning.agents.pool import WorkerPool
from agentlightning.agents.scheduler import ClaimedTask, TaskScheduler
from agentlightning.observability.metrics import REGISTRY
from agentlightning.rollouts.listeners import RewardEvent, register_reward_listener, unregister_reward_listener
from agentlightning.storage.models import Task
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import cancel_unfinished_tasks, unique, wait_until
from tests.integration.agents.helpers import create_agent, wait_for_task


async def test_tool_using_task_completes_with_trace(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    agent = await create_agent(client, admin, unique("calc"), config={"tools": ["calculator"], "cache": False})
    assign = await client.post(
        "/api/v2/agents/assign", json={"task": "calculate: (3 + 4) * 2 ** 10", "agent_id": agent["id"]}, headers=admin
    )
    task = await wait_for_task(client, admin, assign.json()["task_id"])
    assert task["status"] == "completed", task
    result = task["result"]
    assert '"result": 7168' in result["answer"] and result["cached"] is False
    assert result["tool_calls"][0]["name"] == "calculator" and result["tool_calls"][0]["ok"] is True
    assert result["steps"] == 2 and result["usage"]["total_tokens"] > 0
    assert task["execution_time_ms"] is not None and task["attempts"] == 1
    trace = (await client.get(f"/api/v2/tasks/{task['task_id']}/trace", headers=admin)).json()["data"]["spans"]
    kinds = [s["kind"] for s in trace]
    assert kinds.count("agent_run") == 1 and kinds.count("llm") == 2 and kinds.count("tool") == 1
    root = next(s for s in trace if s["kind"] == "agent_run")
    tool = next(s for s in trace if s["kind"] == "tool")
    assert tool["parent_span_id"] == root["span_id"] and tool["output"]["result"] == 7168
    llm = next(s for s in trace if s["kind"] == "llm")
    assert llm["prompt_tokens"] > 0 and llm["latency_ms"] > 0 and llm["input"]["tools"] == ["calculator"]


async def test_invalid_tool_arguments_are_reported_to_the_model(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    agent = await create_agent(client, admin, unique("pyless"), config={"tools": ["calculator"], "cache": False})
    # The scripted model calls "python", which this agent may not use.
    assign = await client.post(
        "/api/v2/agents/assign", json={"task": "python: print(1)", "agent_id": agent["id"]}, headers=admin
    )
    task = await wait_for_task(client, admin, assign.json()["task_id"])
    assert task["status"] == "completed"
    assert task["result"]["answer"].startswith("Answer:")  # no tool offered -> plain answer


async def test_response_cache_marks_cached_answers(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, app: FastAPI
) -> None:
    agent = await create_agent(client, admin, unique("cached"))
    labels = {"agent_id": str(agent["id"]), "status": "completed"}
    before = REGISTRY.get_sample_value("agent_requests_total", labels) or 0.0
    body = {"task": f"same question {unique('q')}", "agent_id": agent["id"], "context": {"k": 1}}
    first = await wait_for_task(
        client, admin, (await client.post("/api/v2/agents/assign", json=body, headers=admin)).json()["task_id"]
    )
    second = await wait_for_task(
        client, admin, (await client.post("/api/v2/agents/assign", json=body, headers=admin)).json()["task_id"]
    )
    assert first["result"]["cached"] is False and second["result"]["cached"] is True
    assert second["result"]["answer"] == first["result"]["answer"]
    # A config change (new config_version) or a different context misses the cache.
    await client.put(f"/api/v2/agents/{agent['id']}", json={"config": {"system_prompt": "changed"}}, headers=admin)
    third = await wait_for_task(
        client, admin, (await client.post("/api/v2/agents/assign", json=body, headers=admin)).json()["task_id"]
    )
    assert third["result"]["cached"] is False
    assert app.state.ctx.cache.hit_rate("agent_response") is not None
    assert REGISTRY.get_sample_value("agent_requests_total", labels) == before + 3
    metrics = (await client.get("/metrics")).text
    assert f'agent_requests_total{{agent_id="{agent["id"]}",status="completed"}}' in metrics
    assert "agent_response_time_seconds_bucket" in metrics and "agent_active_count" in metrics


async def test_session_memory_and_long_term_notes(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, fake_llm: FakeLLMServer
) -> None:
    agent = await create_agent(client, admin, unique("mem"), config={"tools": ["memory"]})
    session = unique("session")
    one = await client.post(
        "/api/v2/agents/assign",
        json={"task": "remember: the launch code is 4242", "agent_id": agent["id"], "session_id": session},
        headers=admin,
    )
    done = await wait_for_task(client, admin, one.json()["task_id"])
    assert done["status"] == "completed" and done["result"]["tool_calls"][0]["name"] == "memory"
    two = await client.post(
        "/api/v2/agents/assign",
        json={"task": "what did I tell you?", "agent_id": agent["id"], "session_id": session},
        headers=admin,
    )
    await wait_for_task(client, admin, two.json()["task_id"])
    request = next(r for r in reversed(fake_llm.requests) if "what did I tell you?" in str(r["messages"][-1]))
    contents = [m.get("content") for m in request["messages"]]
    assert "remember: the launch code is 4242" in contents  # the session window
    assert "4242" in request["messages"][0]["content"]  # the recalled note in the system prompt
    three = await client.post(
        "/api/v2/agents/assign", json={"task": "recall: launch code", "agent_id": agent["id"]}, headers=admin
    )
    recalled = await wait_for_task(client, admin, three.json()["task_id"])
    assert "4242" in recalled["result"]["answer"]


async def test_llm_failure_is_retried_then_fails_with_reason(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    with FakeLLMServer(fail_first=100) as broken:
        agent = await create_agent(
            client, admin, unique("broken"), config={"base_url": broken.base_url, "api_key": "agent-own-key"}
        )
        assign = await client.post("/api/v2/agents/assign", json={"task": "hi", "agent_id": agent["id"]}, headers=admin)
        task = await wait_for_task(client, admin, assign.json()["task_id"], timeout=60)
    assert task["status"] == "failed" and task["attempts"] == task["max_attempts"] == 3
    assert "LLM call failed" in task["error_message"] and "attempt 3 of 3" in task["error_message"]


async def test_sandboxed_python_tool_through_a_task(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    agent = await create_agent(client, admin, unique("py"), config={"tools": ["python"], "cache": False})
    code = "import statistics; print(statistics.mean([2, 4, 9])); print(open('/etc/hostname').read())"
    assign = await client.post(
        "/api/v2/agents/assign", json={"task": f"python: {code}", "agent_id": agent["id"]}, headers=admin
    )
    task = await wait_for_task(client, admin, assign.json()["task_id"])
    assert task["status"] == "completed"
    assert "5" in task["result"]["answer"] and "FileNotFoundError" in task["result"]["answer"]


async def test_expired_lease_is_reclaimed_and_result_written_once(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI, settings: object
) -> None:
    ctx = app.state.ctx
    agent = await create_agent(client, admin, unique("lease"), config={"max_concurrency": 5})
    await cancel_unfinished_tasks(ctx)
    scheduler = TaskScheduler(ctx)
    task, _ = await scheduler.assign(task="survive a dead worker", agent_id=agent["id"])
    while True:  # a 'worker' that claims and then dies (never heart-beats)
        claimed = await scheduler.claim("doomed-worker", 50)
        if any(c.id == task["id"] for c in claimed):
            break
        assert claimed, "the task was not claimable"
    dead = next(c for c in claimed if c.id == task["id"])
    pool = WorkerPool(ctx.settings, worker_id="rescuer")
    await pool.start(ctx)
    try:
        done = await wait_for_task(client, admin, task["id"], timeout=30)
    finally:
        await pool.stop()
    assert done["status"] == "completed" and done["attempts"] == 2
    # The dead worker's late result is refused: the result is written once.
    assert await scheduler.complete(dead, {"answer": "late"}, 1) is False
    async with ctx.db.session() as s:
        row = await s.scalar(select(Task).where(Task.id == task["id"]))
    assert row is not None and row.result["answer"] != "late" and row.lease_owner == "rescuer"


async def test_cancel_running_task_stops_it(client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool) -> None:
    with FakeLLMServer(delay_s=2.5) as slow:
        agent = await create_agent(
            client,
            admin,
            unique("slow"),
            config={"base_url": slow.base_url, "api_key": "agent-own-key", "cache": False},
        )
        assign = await client.post(
            "/api/v2/agents/assign", json={"task": "slow", "agent_id": agent["id"]}, headers=admin
        )
        task_id = assign.json()["task_id"]
        for _ in range(100):
            if (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]["status"] == "running":
                break
            await asyncio.sleep(0.05)
        cancelled = await client.post(f"/api/v2/tasks/{task_id}/cancel", headers=admin)
        assert cancelled.status_code == 200
        # The next heartbeat tells the worker, which stops the run.
        await wait_until(lambda: task_id not in pool.in_flight, timeout=30, what="the cancelled run stopped")
    final = (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]
    assert final["status"] == "cancelled" and final["result"] is None


async def test_knowledge_search_tool_returns_items_with_ids(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    word = unique("zephyrine").replace("-", "")
    created = await client.post(
        "/api/v2/knowledge",
        json={
            "title": f"About {word}",
            "content": f"The {word} protocol rotates keys every 90 days.",
            "category": "security",
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    item_id = created.json()["data"]["id"]
    agent = await create_agent(client, admin, unique("research"), template="research_agent", config={"cache": False})
    assign = await client.post(
        "/api/v2/agents/assign", json={"task": f"search: {word}", "agent_id": agent["id"]}, headers=admin
    )
    task = await wait_for_task(client, admin, assign.json()["task_id"], timeout=60)
    assert task["status"] == "completed", task
    assert task["result"]["tool_calls"][0]["name"] == "knowledge_search" and task["result"]["tool_calls"][0]["ok"]
    assert f'"id": {item_id}' in task["result"]["answer"] and "90 days" in task["result"]["answer"]


async def test_graceful_stop_hands_in_flight_tasks_back(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    ctx = app.state.ctx
    with FakeLLMServer(delay_s=3) as slow:
        agent = await create_agent(
            client,
            admin,
            unique("graceful"),
            config={"base_url": slow.base_url, "api_key": "agent-own-key", "cache": False},
        )
        first = WorkerPool(ctx.settings.model_copy(update={"agent_shutdown_grace_seconds": 0.3}), worker_id="leaving")
        await first.start(ctx)
        assign = await client.post(
            "/api/v2/agents/assign", json={"task": "long", "agent_id": agent["id"]}, headers=admin
        )
        task_id = assign.json()["task_id"]
        for _ in range(100):
            if task_id in first.in_flight:
                break
            await asyncio.sleep(0.05)
        assert task_id in first.in_flight
        await first.stop()
        released = (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]
        assert released["status"] == "pending" and released["attempts"] == 0  # handed back, attempt not counted
        second = WorkerPool(ctx.settings, worker_id="staying")
        await second.start(ctx)
        try:
            done = await wait_for_task(client, admin, task_id, timeout=30)
        finally:
            await second.stop()
    assert done["status"] == "completed" and done["attempts"] == 1


async def test_pool_scales_with_queue_depth_and_respects_agent_limits(
    client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI
) -> None:
    ctx = app.state.ctx
    await cancel_unfinished_tasks(ctx)  # the backlog is this test's tasks only
    with FakeLLMServer(delay_s=0.4) as slow:
        wide = await create_agent(
            client,
            admin,
            unique("wide"),
            config={"base_url": slow.base_url, "api_key": "agent-own-key", "cache": False, "max_concurrency": 10},
        )
        narrow = await create_agent(
            client,
            admin,
            unique("narrow"),
            config={"base_url": slow.base_url, "api_key": "agent-own-key", "cache": False, "max_concurrency": 2},
        )
        ids = []
        for i in range(6):
            for agent in (wide, narrow):
                r = await client.post(
                    "/api/v2/agents/assign", json={"task": f"t{i}", "agent_id": agent["id"]}, headers=admin
                )
                ids.append(r.json()["task_id"])
        workers = WorkerPool(ctx.settings, min_concurrency=1, max_concurrency=6, worker_id="scaler")
        await workers.start(ctx)
        peak_total, peak_narrow = 0, 0
        try:
            for _ in range(400):
                running = [c for c, _ in workers.in_flight.values()]
                peak_total = max(peak_total, len(running))
                peak_narrow = max(peak_narrow, sum(1 for c in running if c.agent.id == narrow["id"]))
                statuses = [
                    (await client.get(f"/api/v2/tasks/{t}", headers=admin)).json()["data"]["status"] for t in ids[-2:]
                ]
                if all(s == "completed" for s in statuses) and not workers.in_flight:
                    break
                await asyncio.sleep(0.05)
        finally:
            await workers.stop()
    assert peak_total == 6  # grew from 1 to the maximum with the backlog
    assert peak_narrow == 2  # never above the agent's own limit
    for t in ids:
        assert (await client.get(f"/api/v2/tasks/{t}", headers=admin)).json()["data"]["status"] == "completed"


async def test_a_heartbeat_right_after_the_outcome_is_stored_does_not_stop_the_run(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool
) -> None:
    """Storing the outcome ends the lease, so a heartbeat in that moment finds the task "lost".
    The run must still finish what follows the store: the reward listeners hear the verifier's
    reward (the bandit learns from it) and the pool counts the task completed, not lost."""
    ctx = pool.ctx
    assert pool.scheduler is not None
    heard: list[RewardEvent] = []

    async def listener(event: RewardEvent) -> None:
        heard.append(event)

    real_complete = pool.scheduler.complete

    async def complete_then_heartbeat(task: ClaimedTask, *args: Any, **kwargs: Any) -> bool:
        stored = await real_complete(task, *args, **kwargs)
        pool._leases_lost([(task.id, task.lease_token)])  # the heartbeat that lands just now
        await asyncio.sleep(0)  # a cancelled run would stop here
        return stored

    pool.scheduler.complete = complete_then_heartbeat  # type: ignore[method-assign]
    register_reward_listener(listener, scope=ctx)
    try:
        agent = await create_agent(client, admin, unique("beat"), config={"cache": False})
        assign = await client.post(
            "/api/v2/agents/assign",
            json={
                "task": "What is 6*7?",
                "agent_id": agent["id"],
                "context": {"verifier": {"type": "contains", "expected": "4"}},
            },
            headers=admin,
        )
        assert assign.status_code == 202, assign.text
        task_id = assign.json()["task_id"]
        task = await wait_for_task(client, admin, task_id, timeout=60)
        assert task["status"] == "completed", task
        await wait_until(lambda: task_id not in pool.in_flight, timeout=30, what="the run ended")
    finally:
        unregister_reward_listener(listener)
        pool.scheduler.complete = real_complete  # type: ignore[method-assign]
    assert [e.task_id for e in heard] == [task_id]
    assert pool.completed >= 1 and pool.lost == 0
