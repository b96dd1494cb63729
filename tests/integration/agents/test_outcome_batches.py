"""PostgreSQL: task outcomes that arrive together are stored by one statement, each still under its
own lease, and one outcome the database refuses does not fail the others of its batch."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from agentlightning.agents.queue_sql import ClaimedTask, PostgresQueue
from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.rollouts.capture import TaskRollout
from agentlightning.storage.models import Reward, Rollout, Task, TaskEvent
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent

pytestmark = pytest.mark.parametrize("backend", ["postgres"])


async def _claimed(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], n: int
) -> tuple[TaskScheduler, PostgresQueue, list[ClaimedTask]]:
    """``n`` new tasks of a new agent, claimed (other tests' leftovers are claimed away first)."""
    scheduler = TaskScheduler(app.state.ctx)
    assert isinstance(scheduler.queue, PostgresQueue)
    while await scheduler.claim("drain", 50):
        pass
    agent = await create_agent(client, admin, unique("batched"), config={"max_concurrency": 16})
    ids = {(await scheduler.assign(task=f"t{i}", agent_id=agent["id"]))[0]["id"] for i in range(n)}
    claimed: list[ClaimedTask] = []
    while len(claimed) < n:
        claimed += [c for c in await scheduler.claim("batch-worker", 16) if c.id in ids]
    return scheduler, scheduler.queue, claimed


def _rollout(task: ClaimedTask, answer: str | None) -> TaskRollout:
    """The task's rollout, verified against "yes" when its id is even and "no" when odd."""
    expected = "yes" if task.id % 2 == 0 else "no"
    return TaskRollout.build(
        task_id=task.id,
        agent_id=task.agent.id,
        description=task.description,
        context={"verifier": {"type": "exact", "expected": expected}},
        status="completed" if answer is not None else "failed",
        answer=answer,
        error=None if answer is not None else "no luck",
    )


async def _stored(app: FastAPI, ids: list[int]) -> dict[int, tuple[str, int, int]]:
    """task id -> (status, terminal events, rollouts)."""
    async with app.state.ctx.db.session() as s:
        statuses = dict((await s.execute(select(Task.id, Task.status).where(Task.id.in_(ids)))).all())
        events = dict(
            (
                await s.execute(
                    select(TaskEvent.task_id, func.count())
                    .where(TaskEvent.task_id.in_(ids), TaskEvent.event.in_(["task_completed", "task_failed"]))
                    .group_by(TaskEvent.task_id)
                )
            ).all()
        )
        rollouts = dict(
            (
                await s.execute(
                    select(Rollout.task_id, func.count()).where(Rollout.task_id.in_(ids)).group_by(Rollout.task_id)
                )
            ).all()
        )
    return {i: (statuses[i], events.get(i, 0), rollouts.get(i, 0)) for i in ids}


async def test_outcomes_arriving_together_share_one_statement(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    scheduler, queue, claimed = await _claimed(app, client, admin, 6)
    before = queue.outcomes.statements
    stale = dataclasses.replace(claimed[-1], lease_token="not-the-lease")  # this one's lease is not held
    results = await asyncio.gather(
        *(scheduler.complete(c, {"answer": "yes"}, 5, rollout=_rollout(c, "yes")) for c in claimed[:4]),
        scheduler.fail(claimed[4], "no luck", retryable=False, rollout=_rollout(claimed[4], None)),
        scheduler.complete(stale, {"answer": "late"}, 5, rollout=_rollout(stale, "late")),
        # An earlier run of the first task (reclaimed since) finishing in the same batch as the current one.
        scheduler.complete(dataclasses.replace(claimed[0], lease_token="an-old-lease"), {"answer": "old run"}, 5),
    )
    assert results == [True, True, True, True, "failed", False, False]
    assert queue.outcomes.statements - before == 1
    stored = await _stored(app, [c.id for c in claimed])
    assert [stored[c.id] for c in claimed] == [("completed", 1, 1)] * 4 + [("failed", 1, 1), ("running", 0, 0)]
    async with app.state.ctx.db.session() as s:
        rewards = dict(
            (
                await s.execute(
                    select(Rollout.task_id, Reward.value)
                    .join(Reward, Reward.rollout_id == Rollout.id)
                    .where(Rollout.task_id.in_([c.id for c in claimed]))
                )
            ).all()
        )
    # Each rollout carries its own verifier reward: tasks with an even id expected "yes", odd ones "no".
    assert rewards == {c.id: (1.0 if c.id % 2 == 0 else 0.0) for c in claimed[:4]}


async def test_an_outcome_the_database_refuses_fails_alone(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    scheduler, queue, claimed = await _claimed(app, client, admin, 4)
    # PostgreSQL's jsonb cannot hold a NUL character: this outcome is refused by the database.
    results = await asyncio.gather(
        *(scheduler.complete(c, {"answer": "fine" if i != 1 else "bad \u0000 byte"}, 5) for i, c in enumerate(claimed)),
        return_exceptions=True,
    )
    assert [r is True for r in results] == [True, False, True, True]
    assert "unicode" in str(results[1]).lower() or "\\u0000" in str(results[1])
    stored = await _stored(app, [c.id for c in claimed])
    assert [stored[c.id][:2] for c in claimed] == [("completed", 1), ("running", 0), ("completed", 1), ("completed", 1)]
    # The worker then stores the failure instead (its result left out): the task does not hang.
    assert await scheduler.fail(claimed[1], "result refused", retryable=False) == "failed"


async def test_a_caller_cancelled_before_its_outcome_is_sent_takes_it_back(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    scheduler, queue, claimed = await _claimed(app, client, admin, 2)
    cancelled = asyncio.create_task(scheduler.complete(claimed[0], {"answer": "never"}, 5))
    await asyncio.sleep(0)  # queued, not yet sent
    cancelled.cancel()
    assert await scheduler.complete(claimed[1], {"answer": "kept"}, 5)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    stored = await _stored(app, [c.id for c in claimed])
    assert stored[claimed[0].id][:2] == ("running", 0)
    assert stored[claimed[1].id][:2] == ("completed", 1)
