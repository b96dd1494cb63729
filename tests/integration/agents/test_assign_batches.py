"""PostgreSQL: assigns that arrive together are queued by one statement, and each request still
gets its own answer (a new task, a replay, or the error of its agent)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from agentlightning.agents.queue_sql import PostgresQueue
from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.errors import AppError
from agentlightning.storage.models import Task, TaskEvent
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent

pytestmark = pytest.mark.parametrize("backend", ["postgres"])


async def test_assigns_arriving_together_share_one_statement_and_each_gets_its_answer(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    good = await create_agent(client, admin, unique("good"), type="writer")
    off = await create_agent(client, admin, unique("off"))
    assert (await client.put(f"/api/v2/agents/{off['id']}", json={"status": "disabled"}, headers=admin)).is_success
    scheduler = TaskScheduler(app.state.ctx)
    queue = scheduler.queue
    assert isinstance(queue, PostgresQueue)
    assert TaskScheduler(app.state.ctx).queue is queue  # one queue per process: requests share its batches
    key = unique("key")
    requests: list[dict[str, Any]] = [
        {"task": "by id", "agent_id": good["id"]},
        {"task": "by name", "agent_id": good["name"], "priority": "high"},
        {"task": "keyed", "agent_id": good["id"], "idempotency_key": key, "created_by": "admin"},
        {"task": "keyed", "agent_id": good["id"], "idempotency_key": key, "created_by": "admin"},
        {"task": "to a disabled agent", "agent_id": off["id"]},
        {"task": "to nobody", "agent_id": 10**9},
        {"task": "of another type", "agent_id": good["id"], "agent_type": "coder"},
        {"task": "with a context", "agent_id": good["id"], "context": {"n": 1, "nested": {"x": [1, 2]}}},
    ]
    before = queue.assigns.statements
    results = await asyncio.gather(*(scheduler.assign(**r) for r in requests), return_exceptions=True)
    assert queue.assigns.statements - before == 1

    by_id, by_name, keyed, replayed, disabled, nobody, mistyped, with_context = results
    assert isinstance(by_id, tuple) and by_id[1] is True and by_id[0]["agent_id"] == good["id"]
    assert isinstance(by_name, tuple) and by_name[0]["agent_id"] == good["id"] and by_name[0]["priority"] == "high"
    assert isinstance(keyed, tuple) and isinstance(replayed, tuple)
    assert keyed[0]["id"] == replayed[0]["id"] and {keyed[1], replayed[1]} == {True, False}
    assert isinstance(disabled, AppError) and disabled.code == "AGENT_DISABLED"
    assert isinstance(nobody, AppError) and nobody.code == "AGENT_NOT_FOUND"
    assert isinstance(mistyped, AppError) and mistyped.code == "VALIDATION_ERROR"
    assert isinstance(with_context, tuple)
    new_ids = [r[0]["id"] for r in (by_id, by_name, keyed, with_context)]
    assert len(set(new_ids)) == 4
    async with app.state.ctx.db.session() as s:
        rows = {t.id: t for t in (await s.execute(select(Task).where(Task.id.in_(new_ids)))).scalars()}
        created = dict(
            (
                await s.execute(
                    select(TaskEvent.task_id, func.count())
                    .where(TaskEvent.task_id.in_(new_ids), TaskEvent.event == "task_created")
                    .group_by(TaskEvent.task_id)
                )
            ).all()
        )
    assert [rows[i].task_description for i in new_ids] == ["by id", "by name", "keyed", "with a context"]
    assert rows[with_context[0]["id"]].context == {"n": 1, "nested": {"x": [1, 2]}}
    assert all(rows[i].status == "pending" for i in new_ids)
    assert created == {i: 1 for i in new_ids}  # one task_created event each, none for the replay


async def test_a_request_the_database_refuses_fails_alone(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    agent = await create_agent(client, admin, unique("shared"))
    scheduler = TaskScheduler(app.state.ctx)
    # PostgreSQL's jsonb cannot hold a NUL character: the database refuses this one request.
    contexts = [{"i": 0}, {"i": 1, "bad": "a\u0000b"}, {"i": 2}, {"i": 3}]
    results = await asyncio.gather(
        *(scheduler.assign(task=f"t{c['i']}", agent_id=agent["id"], context=c) for c in contexts),
        return_exceptions=True,
    )
    assert [isinstance(r, tuple) for r in results] == [True, False, True, True]
    ids = [r[0]["id"] for r in results if isinstance(r, tuple)]
    async with app.state.ctx.db.session() as s:
        stored = (await s.execute(select(Task.context).where(Task.agent_id == agent["id"]).order_by(Task.id))).all()
    assert [row.context for row in stored] == [{"i": 0}, {"i": 2}, {"i": 3}]
    assert len(set(ids)) == 3
