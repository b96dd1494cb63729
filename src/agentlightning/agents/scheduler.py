"""The task assignment engine: the ``tasks`` table as a durable priority queue with leases.

* **assign** inserts a ``pending`` row (idempotent per ``Idempotency-Key``) and publishes
  ``task_created``.
* **claim** moves pending rows to ``running`` in priority order then FIFO, under a lease
  (owner, unique token, expiry).  On PostgreSQL candidates are locked ``FOR UPDATE SKIP
  LOCKED`` and the agents' rows are locked while their running count is checked, so
  per-agent concurrency limits hold across processes and hosts.  On SQLite (single host)
  one atomic ``UPDATE ... RETURNING`` claims one task at a time.
* **heartbeat** extends the leases a worker still holds and reports the ones it lost.
* **complete / fail** write the outcome once: only while the row is ``running`` under the
  caller's lease token.  A late result from a worker that lost its lease is discarded.
* **reap** returns tasks whose lease expired to ``pending`` (their worker died), or fails
  them with the reason once ``max_attempts`` is used up.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, cast, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from agentlightning.agents import queue_pg
from agentlightning.agents.profile import (
    DEFAULT_MAX_CONCURRENCY,
    AgentProfile,
    ProfileCache,
)
from agentlightning.agents.queue_pg import autocommit
from agentlightning.agents.service import AgentService
from agentlightning.errors import Conflict, NotFound, ValidationFailed
from agentlightning.storage import cache_keys
from agentlightning.storage.models import Agent, Task, TraceSpan
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.vocabulary import PRIORITY_RANKS, TASK_STATUSES, TASK_TERMINAL

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

#: Re-exported names of the one vocabulary (``agentlightning.vocabulary``).
__all__ = [
    "PRIORITY_RANKS",
    "TASK_STATUSES",
    "TERMINAL_STATUSES",
    "ClaimedTask",
    "TaskScheduler",
    "task_event_data",
    "task_to_dict",
]
TERMINAL_STATUSES = TASK_TERMINAL


@dataclass(slots=True)
class ClaimedTask:
    """A task this worker holds a lease on, with the agent it runs for."""

    id: int
    description: str
    context: dict[str, Any]
    session_id: str | None
    priority: str
    attempts: int
    max_attempts: int
    lease_token: str
    agent: AgentProfile
    #: Who submitted the task (their memory is the one the run reads and writes).
    created_by: str | None = None


def task_to_dict(row: Task, agent: Agent | None = None) -> dict[str, Any]:
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


def _limit_expr() -> Any:
    """An agent's concurrency limit from its JSON config, in SQL, for both dialects."""
    return func.coalesce(Agent.config["max_concurrency"].as_integer(), DEFAULT_MAX_CONCURRENCY)


class TaskScheduler:
    """Queue operations on ``tasks`` for the API (assign, read, cancel) and workers (claim, ...)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.agents = AgentService(ctx)
        self.lease = timedelta(seconds=ctx.settings.agent_task_lease_seconds)
        self._sqlite_claim_lock = asyncio.Lock()
        self.profiles = ProfileCache()
        #: After a claim: True when an agent with pending work was at its concurrency limit, so a
        #: finished task elsewhere may free a slot this worker could fill.
        self.blocked_by_limits = False

    # --- API side --------------------------------------------------------------------------
    async def assign(
        self,
        *,
        task: str,
        agent_id: int | str | None = None,
        agent_type: str | None = None,
        priority: str = "medium",
        context: dict[str, Any] | None = None,
        session_id: str | None = None,
        idempotency_key: str | None = None,
        created_by: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a task; returns ``(task, created)`` (``created`` is False for an idempotent replay)."""
        context = context or {}
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
        if self.ctx.db.dialect == "postgresql":
            return await self._assign_postgres(agent_id, agent_type, values, scoped_key, request_hash)
        if scoped_key:
            existing = await self._replay(scoped_key, request_hash)
            if existing is not None:
                return existing, False
        agent = await self.agents.resolve_for_assign(agent_id, agent_type)
        row = Task(agent_id=agent.id, **values)
        async with self.ctx.db.session() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                if scoped_key:
                    existing = await self._replay(scoped_key, request_hash)
                    if existing is not None:
                        return existing, False
                raise
        return await self._created(row, agent.name, agent.type), True

    async def _assign_postgres(
        self,
        agent_id: int | str | None,
        agent_type: str | None,
        values: dict[str, Any],
        scoped_key: str | None,
        request_hash: str,
    ) -> tuple[dict[str, Any], bool]:
        """One statement resolves the agent and inserts (idempotently); errors and replays cost more."""
        ref: int | str = agent_id if agent_id is not None else (await self.agents.pick_for_type(str(agent_type))).id
        async with autocommit(self.ctx.db) as conn:
            stmt, params = queue_pg.assign_statement(ref, agent_type if agent_id is not None else None, values)
            found = (await conn.execute(stmt, params)).first()
        if found is None or found.task_id is None:
            if scoped_key:  # a replay wins over later changes to the agent
                existing = await self._replay(scoped_key, request_hash)
                if existing is not None:
                    return existing, False
            if found is None:
                raise await self.agents.not_found(ref)
            if agent_type is not None and found.type != agent_type:
                raise ValidationFailed(
                    "VALIDATION_ERROR", f"Agent '{found.name}' is of type '{found.type}', not '{agent_type}'"
                )
            if found.status == "disabled":
                raise Conflict("AGENT_DISABLED", f"Agent '{found.name}' is disabled", details={"agent_id": found.id})
            raise Conflict("IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used for a different request")
        row = Task(id=found.task_id, agent_id=found.id, **values)
        return await self._created(row, found.name, found.type), True

    async def _created(self, row: Task, agent_name: str, agent_type: str) -> dict[str, Any]:
        data = task_to_dict(row) | {"agent_name": agent_name, "agent_type": agent_type}
        await self.ctx.events.publish("tasks", "task_created", task_event_data(data))
        return data

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
    ) -> tuple[list[dict[str, Any]], int]:
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
        async with self.ctx.db.session() as s:
            result = await s.execute(
                update(Task)
                .where(Task.id == task_id, Task.status.in_(("pending", "running")))
                .values(
                    status="cancelled", completed_at=now, error_message="cancelled by request", lease_expires_at=None
                )
                .returning(Task.id)
            )
            changed = result.first() is not None
            await s.commit()
        data = await self.get(task_id)
        if not changed:
            raise Conflict(
                "TASK_ALREADY_FINISHED",
                f"Task '{task_id}' is already {data['status']}",
                details={"task_id": task_id, "status": data["status"]},
            )
        await self.ctx.events.publish("tasks", "task_cancelled", task_event_data(data))
        return data

    async def queue_depth(self) -> int:
        """Pending tasks of active agents."""
        async with self.ctx.db.session() as s:
            return int(
                await s.scalar(
                    select(func.count())
                    .select_from(Task)
                    .join(Agent, Agent.id == Task.agent_id)
                    .where(Task.status == "pending", Agent.status == "active")
                )
                or 0
            )

    # --- worker side -----------------------------------------------------------------------
    async def claim(self, worker_id: str, limit: int = 1) -> list[ClaimedTask]:
        """Lease up to ``limit`` runnable tasks to ``worker_id``."""
        if limit <= 0:
            return []
        if self.ctx.db.dialect == "postgresql":
            return await self._claim_postgres(worker_id, limit)
        claimed: list[ClaimedTask] = []
        self.blocked_by_limits = True  # not tracked on SQLite: a finished task may always free a slot
        async with self._sqlite_claim_lock:
            for _ in range(limit):
                one = await self._claim_sqlite_one(worker_id)
                if one is None:
                    break
                claimed.append(one)
        return claimed

    async def _claim_postgres(self, worker_id: str, limit: int) -> list[ClaimedTask]:
        """Two statements in one transaction: lock the agents with work, then lease a batch."""
        now = utcnow()
        async with self.ctx.db.session() as s:
            locked = (await s.execute(queue_pg.LOCK_AGENTS)).all()
            if not locked:
                await s.rollback()
                self.blocked_by_limits = False
                return []
            profiles = await self.profiles.get_many(s, {a.id: a.config_version for a in locked})
            self.blocked_by_limits = any(
                a.running >= profiles[a.id].max_concurrency for a in locked if a.id in profiles
            )
            agent_ids = [a.id for a in locked if a.id in profiles]
            rows = (
                await s.execute(
                    queue_pg.CLAIM_BATCH,
                    {
                        "agent_ids": agent_ids,
                        "limits": [profiles[a].max_concurrency for a in agent_ids],
                        "limit": limit,
                        "now": now,
                        "expires": now + self.lease,
                        "owner": worker_id,
                        "claim": uuid.uuid4().hex,
                    },
                )
            ).all()
            await AgentService.touch_activity(s, {r.agent_id for r in rows}, now)
            await s.commit()
        return [
            ClaimedTask(
                id=r.id,
                description=r.task_description,
                context=r.context or {},
                session_id=r.session_id,
                priority=r.priority,
                attempts=r.attempts,
                max_attempts=r.max_attempts,
                lease_token=r.lease_token,
                agent=profiles[r.agent_id],
                created_by=r.created_by,
            )
            for r in sorted(rows, key=lambda r: (-r.priority_rank, r.id))
        ]

    def _lease_update(self, worker_id: str, now: datetime) -> Any:
        claim = uuid.uuid4().hex
        return (
            update(Task)
            .values(
                status="running",
                started_at=now,
                attempts=Task.attempts + 1,
                lease_owner=worker_id,
                lease_token=literal(claim) + literal(":") + cast(Task.id, String),
                lease_expires_at=now + self.lease,
                error_message=None,
            )
            .execution_options(synchronize_session=False)
        )

    async def _claim_sqlite_one(self, worker_id: str) -> ClaimedTask | None:
        now = utcnow()
        cand, other = aliased(Task), aliased(Task)
        running_for_agent = (
            select(func.count())
            .select_from(other)
            .where(other.agent_id == cand.agent_id, other.status == "running")
            .scalar_subquery()
        )
        pick = (
            select(cand.id)
            .join(Agent, Agent.id == cand.agent_id)
            .where(cand.status == "pending", Agent.status == "active", running_for_agent < _limit_expr())
            .order_by(cand.priority_rank.desc(), cand.id)
            .limit(1)
            .scalar_subquery()
        )
        async with self.ctx.db.session() as s:
            row = (
                await s.execute(
                    self._lease_update(worker_id, now).where(Task.id == pick, Task.status == "pending").returning(Task)
                )
            ).scalar_one_or_none()
            if row is None:
                await s.rollback()
                return None
            agent = await s.get(Agent, row.agent_id)
            await AgentService.touch_activity(s, [row.agent_id], now)
            await s.commit()
        assert agent is not None
        return self._claimed(row, agent)

    @staticmethod
    def _claimed(row: Task, agent: Agent) -> ClaimedTask:
        return ClaimedTask(
            id=row.id,
            description=row.task_description,
            context=row.context or {},
            session_id=row.session_id,
            priority=row.priority,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            lease_token=str(row.lease_token),
            agent=AgentProfile.from_row(agent),
            created_by=row.created_by,
        )

    async def heartbeat(self, tokens: dict[int, str]) -> set[int]:
        """Extend the leases held under ``tokens`` (task id -> token); return ids no longer held."""
        if not tokens:
            return set()
        async with self.ctx.db.session() as s:
            kept = {
                r[0]
                for r in await s.execute(
                    update(Task)
                    .where(Task.lease_token.in_(list(tokens.values())), Task.status == "running")
                    .values(lease_expires_at=utcnow() + self.lease)
                    .returning(Task.id)
                    .execution_options(synchronize_session=False)
                )
            }
            await s.commit()
        return set(tokens) - kept

    async def complete(
        self,
        task: ClaimedTask,
        result: dict[str, Any],
        execution_ms: int,
        spans: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Record the result once; False when the lease was lost (the result is discarded).

        ``spans`` (trace rows of the attempt) are written in the same transaction, so a completed
        task always has its trace, at the cost of one commit.
        """
        return await self._finish(
            task, spans, status="completed", result=result, execution_time_ms=execution_ms, error_message=None
        )

    async def fail(
        self, task: ClaimedTask, error: str, *, retryable: bool, execution_ms: int | None = None
    ) -> str | None:
        """Fail the attempt: back to ``pending`` when retryable and attempts remain, else ``failed``.

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
            return "pending" if res.rowcount else None
        ok = await self._finish(
            task,
            None,
            status="failed",
            result=None,
            execution_time_ms=execution_ms,
            error_message=f"{error} (attempt {task.attempts} of {task.max_attempts})"[:4000],
        )
        return "failed" if ok else None

    async def _finish(self, task: ClaimedTask, spans: list[dict[str, Any]] | None, **values: Any) -> bool:
        if self.ctx.db.dialect == "postgresql":
            params = queue_pg.finish_parameters(task.id, task.lease_token, spans or [], values, utcnow())
            async with autocommit(self.ctx.db) as conn:
                return (await conn.execute(queue_pg.FINISH, params)).first() is not None
        async with self.ctx.db.session() as s:
            if spans:
                await s.execute(insert(TraceSpan), spans)
            res = await s.execute(
                update(Task)
                .where(Task.id == task.id, Task.lease_token == task.lease_token, Task.status == "running")
                .values(completed_at=utcnow(), lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
            await s.commit()
        return bool(res.rowcount)

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
                    attempts=func.max(Task.attempts - 1, 0)
                    if self.ctx.db.dialect == "sqlite"
                    else func.greatest(Task.attempts - 1, 0),
                )
                .execution_options(synchronize_session=False)
            )
            await s.commit()
        return bool(res.rowcount)

    async def reap_expired(self) -> tuple[list[int], list[dict[str, Any]]]:
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
            await s.commit()
            agents: dict[int, Agent] = {}
            if failed_rows:
                ids = {r.agent_id for r in failed_rows if r.agent_id is not None}
                agents = {a.id: a for a in (await s.execute(select(Agent).where(Agent.id.in_(ids)))).scalars()}
        failed = [task_event_data(task_to_dict(r, agents.get(r.agent_id))) for r in failed_rows]
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
