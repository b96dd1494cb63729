"""The task assignment engine: the ``tasks`` table as a durable priority queue with leases.

It is the one writer of ``tasks`` (routes, the WebSocket and other services call it), and it
stores each task event in the same transaction as the state change it announces (the outbox,
``task_events``), then publishes it: a terminal state always has exactly one terminal event, which
a subscriber gets even when Redis was down or the worker died right after its commit.

* **assign** inserts a ``pending`` row (idempotent per ``Idempotency-Key``) with ``task_created``.
* **claim** moves pending rows to ``running`` in priority order then FIFO, under a lease
  (owner, unique token, expiry), with ``task_started``.  Per-agent concurrency limits hold across
  processes and hosts.
* **heartbeat** extends the leases a worker still holds and reports the ones it lost.
* **complete / fail** write the outcome and its event once: only while the row is ``running``
  under the caller's lease token.  A late result from a worker that lost its lease is discarded.
* **reap** returns tasks whose lease expired to ``pending`` (their worker died), or fails
  them with the reason (and ``task_failed``) once ``max_attempts`` is used up.

What differs between PostgreSQL and SQLite is in :mod:`agentlightning.agents.queue_sql`, chosen
once here.
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, cast, func, literal, or_, select, update

from agentlightning.agents.queue_sql import ClaimedTask, Inserted, QueueDialect, queue_dialect_for
from agentlightning.agents.service import AgentService
from agentlightning.errors import Conflict, NotFound
from agentlightning.observability.metrics import TASK_QUEUE_DEPTH
from agentlightning.rollouts.capture import TaskRollout
from agentlightning.rollouts.verifiers import validate_spec
from agentlightning.storage import cache_keys
from agentlightning.storage.db import affected_rows
from agentlightning.storage.events import Event, record_event
from agentlightning.storage.models import Agent, Task
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.vocabulary import (
    PRIORITY_RANKS,
    TASK_ACTIVE,
    TASK_PRIORITIES,
    TASK_STATUSES,
    TASK_TERMINAL,
    TaskPriority,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from agentlightning.core.context import AppContext
    from agentlightning.storage.db import Database


#: Re-exported names of the one vocabulary (``agentlightning.vocabulary``).
__all__ = [
    "PRIORITY_RANKS",
    "TASK_STATUSES",
    "TERMINAL_STATUSES",
    "ClaimedTask",
    "TaskScheduler",
    "renew_leases",
    "task_event_data",
    "task_to_dict",
]
TERMINAL_STATUSES = TASK_TERMINAL


#: The columns of a task that has not started yet (not among the values it is queued with).
NOT_STARTED: dict[str, Any] = {
    "result": None,
    "error_message": None,
    "started_at": None,
    "completed_at": None,
    "execution_time_ms": None,
}


def task_to_dict(row: Task | SimpleNamespace, agent: Agent | None = None) -> dict[str, Any]:
    """The API representation of a task (``task_id`` duplicates ``id`` for the spec's clients)."""
    return {
        "id": row.id,
        "task_id": row.id,
        "task_description": row.task_description,
        "agent_id": row.agent_id,
        "agent_name": agent.name if agent else None,
        "agent_type": agent.type if agent else None,
        "status": row.status,
        "priority": row.priority,
        "context": row.context or {},
        "session_id": row.session_id,
        "result": row.result,
        "error_message": row.error_message,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "created_at": as_utc(row.created_at),
        "started_at": as_utc(row.started_at),
        "completed_at": as_utc(row.completed_at),
        "execution_time_ms": row.execution_time_ms,
        "created_by": row.created_by,
    }


class TaskScheduler:
    """Queue operations on ``tasks`` for the API (assign, read, cancel) and workers (claim, ...)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.agents = AgentService(ctx)
        self.lease = timedelta(seconds=ctx.settings.agent_task_lease_seconds)
        #: The dialect's SQL, chosen once.
        self.queue: QueueDialect = queue_dialect_for(ctx.db, self.lease)
        self.profiles = self.queue.profiles

    @property
    def blocked_by_limits(self) -> bool:
        """After a claim: True when an agent with pending work was at its concurrency limit, so a
        finished task elsewhere may free a slot this worker could fill."""
        return self.queue.blocked_by_limits

    # --- API side --------------------------------------------------------------------------
    async def assign(
        self,
        *,
        task: str,
        agent_id: int | str | None = None,
        agent_type: str | None = None,
        priority: TaskPriority = "medium",
        context: dict[str, Any] | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
        created_by: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a task; returns ``(task, created)`` (``created`` is False for an idempotent replay).

        A ``context.verifier`` must be a valid verifier spec (``VALIDATION_ERROR`` otherwise).
        """
        context = context or {}
        if "verifier" in context:
            validate_spec(context["verifier"])
        request_hash = cache_keys.stable_hash(
            {
                "task": task,
                "agent_id": agent_id,
                "agent_type": agent_type,
                "priority": priority,
                "context": context,
                "session_id": session_id,
            }
        )
        scoped_key = f"{created_by or '-'}:{idempotency_key}"[:255] if idempotency_key else None
        values = {
            "task_description": task,
            "status": "pending",
            "priority": priority,
            "priority_rank": PRIORITY_RANKS[priority],
            "context": context,
            "session_id": session_id,
            "attempts": 0,
            "max_attempts": self.ctx.settings.agent_task_max_attempts,
            "idempotency_key": scoped_key,
            "request_hash": request_hash,
            "created_by": created_by,
            "created_at": utcnow(),
        }
        if scoped_key and self.queue.replay_first:  # a replay wins over later changes to the agent
            existing = await self._replay(scoped_key, request_hash)
            if existing is not None:
                return existing, False
        event_data = {
            "status": "pending",
            "priority": priority,
            "attempts": 0,
            "session_id": session_id,
            "created_at": values["created_at"],
        }
        inserted = await self.queue.insert(self.agents, agent_id, agent_type, values, event_data)
        if not isinstance(inserted, Inserted):  # the key is taken, or the agent refused the task
            existing = await self._replay(scoped_key, request_hash) if scoped_key else None
            if existing is not None:
                return existing, False
            if inserted is not None:
                raise inserted
            raise Conflict("IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used for a different request")
        await self.ctx.events.announce([inserted.event])
        # The stored row is exactly ``values`` plus its ids: no ORM instance is needed to describe it.
        row = SimpleNamespace(id=inserted.task_id, agent_id=inserted.agent_id, **NOT_STARTED, **values)
        return task_to_dict(row) | {"agent_name": inserted.agent_name, "agent_type": inserted.agent_type}, True

    async def _task_with_agent(self, condition: Any) -> Any:
        """The one task matching ``condition`` with its agent (None for either when absent)."""
        async with self.ctx.db.session() as s:
            return (
                await s.execute(select(Task, Agent).outerjoin(Agent, Agent.id == Task.agent_id).where(condition))
            ).first()

    async def _replay(self, scoped_key: str, request_hash: str) -> dict[str, Any] | None:
        found = await self._task_with_agent(Task.idempotency_key == scoped_key)
        if found is None:
            return None
        row, agent = found
        if row.request_hash != request_hash:
            raise Conflict(
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used for a different request",
                details={"task_id": row.id},
            )
        return task_to_dict(row, agent)

    async def get(self, task_id: int) -> dict[str, Any]:
        """One task, or ``TASK_NOT_FOUND``."""
        found = await self._task_with_agent(Task.id == task_id)
        if found is None:
            raise NotFound("TASK_NOT_FOUND", f"Task '{task_id}' not found", details={"task_id": task_id})
        return task_to_dict(*found)

    async def list(
        self,
        *,
        status: str | None = None,
        agent: int | str | None = None,
        priority: str | None = None,
        session_id: str | None = None,
        created_by: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """A page of tasks, newest first, and the total count."""
        stmt = select(Task, Agent).outerjoin(Agent, Agent.id == Task.agent_id)
        if status:
            stmt = stmt.where(Task.status == status)
        if agent is not None:
            agent_row = await self.agents.get(agent)
            stmt = stmt.where(Task.agent_id == agent_row.id)
        if priority:
            stmt = stmt.where(Task.priority == priority)
        if session_id:
            stmt = stmt.where(Task.session_id == session_id)
        if created_by:
            stmt = stmt.where(Task.created_by == created_by)
        async with self.ctx.db.session() as s:
            total = int(
                await s.scalar(select(func.count()).select_from(stmt.with_only_columns(Task.id).subquery())) or 0
            )
            rows = (
                await s.execute(stmt.order_by(Task.id.desc()).offset((page - 1) * page_size).limit(page_size))
            ).all()
        return [task_to_dict(t, a) for t, a in rows], total

    async def cancel(self, task_id: int) -> dict[str, Any]:
        """Cancel a pending or running task (a running one is stopped at its worker's next heartbeat)."""
        now = utcnow()
        event: Event | None = None
        async with self.ctx.db.session() as s:
            row = (
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.status.in_(("pending", "running")))
                    .values(
                        status="cancelled",
                        completed_at=now,
                        error_message="cancelled by request",
                        lease_expires_at=None,
                    )
                    .returning(Task)
                    .execution_options(synchronize_session=False)
                )
            ).scalar_one_or_none()
            if row is not None:
                agent = await s.get(Agent, row.agent_id) if row.agent_id is not None else None
                data = task_to_dict(row, agent)
                event = await record_event(
                    s,
                    "tasks",
                    "task_cancelled",
                    task_event_data(data),
                    task_id=row.id,
                    agent_id=row.agent_id,
                    owner=row.created_by,
                )
            await s.commit()
        if event is None:
            current = await self.get(task_id)
            raise Conflict(
                "TASK_ALREADY_FINISHED",
                f"Task '{task_id}' is already {current['status']}",
                details={"task_id": task_id, "status": current["status"]},
            )
        await self.ctx.events.announce([event])
        return data

    async def pending_by_priority(self) -> dict[TaskPriority, int]:
        """Pending tasks of active agents per priority (every priority present, zeros included)."""
        async with self.ctx.db.session() as s:
            rows = await s.execute(
                select(Task.priority, func.count())
                .select_from(Task)
                .join(Agent, Agent.id == Task.agent_id)
                .where(Task.status == "pending", Agent.status == "active")
                .group_by(Task.priority)
            )
            counts: dict[TaskPriority, int] = dict.fromkeys(TASK_PRIORITIES, 0)
            for priority, n in rows.all():
                if priority in counts:
                    counts[priority] = int(n)
            return counts

    async def queue_depth(self) -> int:
        """Pending tasks of active agents; also samples ``task_queue_depth{priority}``."""
        counts = await self.pending_by_priority()
        for priority, n in counts.items():
            TASK_QUEUE_DEPTH.labels(priority=priority).set(n)
        return sum(counts.values())

    # --- worker side -----------------------------------------------------------------------
    async def claim(self, worker_id: str, limit: int = 1) -> builtins.list[ClaimedTask]:
        """Lease up to ``limit`` runnable tasks to ``worker_id`` (and announce ``task_started``)."""
        if limit <= 0:
            return []
        claimed, events = await self.queue.claim(worker_id, limit, utcnow())
        await self.ctx.events.announce(events)
        return claimed

    async def heartbeat(self, tokens: dict[int, str]) -> set[int]:
        """Extend the leases held under ``tokens`` (task id -> token); return ids no longer held."""
        return await renew_leases(self.ctx.db, self.lease, tokens)

    async def complete(
        self,
        task: ClaimedTask,
        result: dict[str, Any],
        execution_ms: int,
        spans: builtins.list[dict[str, Any]] | None = None,
        *,
        summary: dict[str, Any] | None = None,
        rollout: TaskRollout | None = None,
    ) -> bool:
        """Record the result once, with its ``task_completed`` event; False when the lease was lost
        (the result is discarded).

        ``spans`` (trace rows of the attempt) are written in the same transaction, so a completed
        task always has its trace.  ``summary`` is the event's ``result`` (the answer, shortened).
        ``rollout`` (the run's rollout and verifier reward) is written with the outcome.
        """
        data = _base_event(task) | {
            "status": "completed",
            "execution_time_ms": execution_ms,
            "result": summary if summary is not None else result,
        }
        return await self._finish(
            task,
            spans,
            "task_completed",
            data,
            rollout,
            status="completed",
            result=result,
            execution_time_ms=execution_ms,
            error_message=None,
        )

    async def fail(
        self,
        task: ClaimedTask,
        error: str,
        *,
        retryable: bool,
        execution_ms: int | None = None,
        rollout: TaskRollout | None = None,
    ) -> str | None:
        """Fail the attempt: back to ``pending`` when retryable and attempts remain, else ``failed``
        (with ``task_failed`` and, when given, the run's failed ``rollout``).

        Returns the new status, or None when the lease was already lost.
        """
        if retryable and task.attempts < task.max_attempts:
            async with self.ctx.db.session() as s:
                res = await s.execute(
                    update(Task)
                    .where(Task.id == task.id, Task.lease_token == task.lease_token, Task.status == "running")
                    .values(status="pending", lease_owner=None, lease_expires_at=None, error_message=error[:4000])
                    .execution_options(synchronize_session=False)
                )
                await s.commit()
            return "pending" if affected_rows(res) else None
        message = f"{error} (attempt {task.attempts} of {task.max_attempts})"[:4000]
        data = _base_event(task) | {"status": "failed", "error_message": message, "execution_time_ms": execution_ms}
        ok = await self._finish(
            task,
            None,
            "task_failed",
            data,
            rollout,
            status="failed",
            result=None,
            execution_time_ms=execution_ms,
            error_message=message,
        )
        return "failed" if ok else None

    async def _finish(
        self,
        task: ClaimedTask,
        spans: builtins.list[dict[str, Any]] | None,
        event: str,
        data: dict[str, Any],
        rollout: TaskRollout | None,
        **values: Any,
    ) -> bool:
        stored = await self.queue.finish(task, spans or [], values, event, data, utcnow(), rollout)
        if stored is None:
            return False
        await self.ctx.events.announce([stored])
        return True

    async def release(self, task: ClaimedTask) -> bool:
        """Hand an unfinished task back to the queue (graceful shutdown); the attempt is not counted."""
        async with self.ctx.db.session() as s:
            res = await s.execute(
                update(Task)
                .where(Task.id == task.id, Task.lease_token == task.lease_token, Task.status == "running")
                .values(
                    status="pending",
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=self.queue.greatest(Task.attempts - 1, 0),
                )
                .execution_options(synchronize_session=False)
            )
            await s.commit()
        return bool(affected_rows(res))

    async def reap_expired(self) -> tuple[builtins.list[int], builtins.list[dict[str, Any]]]:
        """Requeue tasks whose lease expired; fail those out of attempts.

        Returns (requeued ids, failed tasks as event payloads).
        """
        now = utcnow()
        expired = and_(Task.status == "running", Task.lease_expires_at < now)
        async with self.ctx.db.session() as s:
            requeued = [
                r[0]
                for r in await s.execute(
                    update(Task)
                    .where(expired, Task.attempts < Task.max_attempts)
                    .values(
                        status="pending",
                        lease_owner=None,
                        lease_expires_at=None,
                        error_message="lease expired: the worker stopped responding; task requeued",
                    )
                    .returning(Task.id)
                    .execution_options(synchronize_session=False)
                )
            ]
            failed_rows = (
                (
                    await s.execute(
                        update(Task)
                        .where(expired, Task.attempts >= Task.max_attempts)
                        .values(
                            status="failed",
                            completed_at=now,
                            lease_expires_at=None,
                            error_message=literal("lease expired on the last attempt (")
                            + cast(Task.attempts, String)
                            + literal(" attempts): the worker stopped responding"),
                        )
                        .returning(Task)
                        .execution_options(synchronize_session=False)
                    )
                )
                .scalars()
                .all()
            )
            agents: dict[int, Agent] = {}
            if failed_rows:
                ids = {r.agent_id for r in failed_rows if r.agent_id is not None}
                agents = {a.id: a for a in (await s.execute(select(Agent).where(Agent.id.in_(ids)))).scalars()}
            failed = [
                task_event_data(task_to_dict(r, agents.get(r.agent_id) if r.agent_id is not None else None))
                for r in failed_rows
            ]
            events = [
                await record_event(
                    s, "tasks", "task_failed", data, task_id=row.id, agent_id=row.agent_id, owner=row.created_by
                )
                for row, data in zip(failed_rows, failed, strict=True)
            ]
            for row in failed_rows:  # their runs' rollouts end here too (spans of the attempts carry the id)
                if row.agent_id is not None:
                    await TaskRollout.build(
                        task_id=row.id,
                        agent_id=row.agent_id,
                        description=row.task_description,
                        context=row.context or {},
                        status="failed",
                        error=row.error_message,
                    ).write(s, owner=row.created_by, started_at=row.started_at, now=now)
            await s.commit()
        await self.ctx.events.announce(events)
        return requeued, failed

    async def active_leases(self) -> int:
        """Running tasks with a live lease (for health reports)."""
        async with self.ctx.db.session() as s:
            return int(
                await s.scalar(
                    select(func.count())
                    .select_from(Task)
                    .where(
                        Task.status == "running",
                        or_(Task.lease_expires_at.is_(None), Task.lease_expires_at >= utcnow()),
                    )
                )
                or 0
            )


async def renew_leases(db: Database, lease: timedelta, tokens: dict[int, str]) -> set[int]:
    """Extend the leases held under ``tokens`` (task id -> token) by ``lease``; return the ids no
    longer held (cancelled, or reaped and claimed again).  A function of ``db`` alone, so that a
    worker can renew from its own thread and connection, away from its busy event loop."""
    if not tokens:
        return set()
    async with db.session() as s:
        kept = {
            r[0]
            for r in await s.execute(
                update(Task)
                .where(Task.lease_token.in_(list(tokens.values())), Task.status == "running")
                .values(lease_expires_at=utcnow() + lease)
                .returning(Task.id)
                .execution_options(synchronize_session=False)
            )
        }
        await s.commit()
    return set(tokens) - kept


def _base_event(task: ClaimedTask) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "agent_id": task.agent.id,
        "agent_name": task.agent.name,
        "agent_type": task.agent.type,
        "priority": task.priority,
        "attempts": task.attempts,
        "session_id": task.session_id,
    }


def task_event_data(task: dict[str, Any]) -> dict[str, Any]:
    """The payload of ``task_*`` events: enough to filter by agent id, name or type."""
    keys = (
        "task_id",
        "agent_id",
        "agent_name",
        "agent_type",
        "status",
        "priority",
        "attempts",
        "execution_time_ms",
        "error_message",
        "session_id",
        "created_at",
        "started_at",
        "completed_at",
    )
    return {k: task.get(k) for k in keys}


async def cancel_agent_tasks(session: AsyncSession, agent: Agent, reason: str) -> list[Event]:
    """Cancel an agent's unfinished tasks inside the caller's transaction (the agent is going away).

    Each cancelled task gets its stored ``task_cancelled`` event; announce them after the commit.
    """
    rows = (
        (
            await session.execute(
                update(Task)
                .where(Task.agent_id == agent.id, Task.status.in_(TASK_ACTIVE))
                .values(status="cancelled", completed_at=utcnow(), error_message=reason, lease_expires_at=None)
                .returning(Task)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    return [
        await record_event(
            session,
            "tasks",
            "task_cancelled",
            task_event_data(task_to_dict(row, agent)),
            task_id=row.id,
            agent_id=agent.id,
            owner=row.created_by,
        )
        for row in rows
    ]


async def release_expired_leases(session: AsyncSession, agent_id: int) -> list[int]:
    """Hand an agent's running tasks whose lease already expired back to the queue now (inside the
    caller's transaction) instead of at the next reap; returns their ids."""
    released = await session.execute(
        update(Task)
        .where(Task.agent_id == agent_id, Task.status == "running", Task.lease_expires_at < utcnow())
        .values(status="pending", lease_owner=None, lease_expires_at=None)
        .returning(Task.id)
    )
    return [r[0] for r in released]
