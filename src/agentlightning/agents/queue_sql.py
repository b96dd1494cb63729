"""The task queue's SQL, one class per database dialect, chosen once when a scheduler is built.

:class:`TaskScheduler <agentlightning.agents.scheduler.TaskScheduler>` holds one
:class:`QueueDialect` and never asks which database it runs on: everything that differs between
PostgreSQL and SQLite lives here (after Prefect's ``query_components``).

* :class:`PostgresQueue`: the hot path in as few round trips as possible (the constant statements
  of :mod:`agentlightning.agents.queue_pg`): assign is one statement, a claim leases a batch
  under agent row locks with ``FOR UPDATE SKIP LOCKED``, the outcome and its trace are one
  statement.
* :class:`SqliteQueue`: one host; ORM statements in short transactions, one claim at a time
  behind a process lock (SQLite serialises writers anyway).

Every state change stores its event (``task_events``, the outbox) in the same transaction and
returns it, so the caller publishes only committed events and none is lost between the commit
and the publish.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from agentlightning.agents import queue_pg
from agentlightning.agents.profile import DEFAULT_MAX_CONCURRENCY, AgentProfile, ProfileCache
from agentlightning.agents.service import AgentService
from agentlightning.errors import AppError, Conflict, ValidationFailed
from agentlightning.rollouts.capture import TaskRollout
from agentlightning.storage.events import Event, jsonable, record_event, stored_event
from agentlightning.storage.models import Agent, Task, TraceSpan

if TYPE_CHECKING:
    from agentlightning.agents.service import AgentService
    from agentlightning.storage.db import Database


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
    created_by: str | None = None


@dataclass(slots=True)
class Inserted:
    """A newly queued task: its id, its agent and its stored ``task_created`` event."""

    task_id: int
    agent_id: int
    agent_name: str
    agent_type: str
    event: Event


class QueueDialect(ABC):
    """What the scheduler needs from the database; the portable parts are implemented here."""

    name = "portable"
    #: Whether an idempotent replay is looked up before inserting (else only when the insert is refused).
    replay_first = True

    def __init__(self, db: Database, lease: timedelta) -> None:
        self.db = db
        self.lease = lease
        self.profiles = ProfileCache()
        #: After a claim: True when an agent with pending work was at its concurrency limit.
        self.blocked_by_limits = False

    async def insert(
        self,
        agents: AgentService,
        agent_id: int | str | None,
        agent_type: str | None,
        values: dict[str, Any],
        event_data: dict[str, Any],
    ) -> Inserted | AppError | None:
        """Queue a task; None when the idempotency key is taken (the caller replays), or the error
        that refused it when a replay may still win (the agent was disabled since the first try)."""
        agent = await agents.resolve_for_assign(agent_id, agent_type)
        async with self.db.write_session() as s:
            row = Task(agent_id=agent.id, **values)
            s.add(row)
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                return None
            data = event_data | {
                "task_id": row.id,
                "agent_id": agent.id,
                "agent_name": agent.name,
                "agent_type": agent.type,
            }
            event = await record_event(
                s, "tasks", "task_created", data, task_id=row.id, agent_id=agent.id, owner=values.get("created_by")
            )
            await s.commit()
        return Inserted(row.id, agent.id, agent.name, agent.type, event)

    @abstractmethod
    async def claim(self, worker_id: str, limit: int, now: datetime) -> tuple[list[ClaimedTask], list[Event]]:
        """Lease up to ``limit`` runnable tasks; returns them and their ``task_started`` events."""

    async def finish(
        self,
        task: ClaimedTask,
        spans: list[dict[str, Any]],
        values: dict[str, Any],
        event: str,
        event_data: dict[str, Any],
        now: datetime,
        rollout: TaskRollout | None = None,
    ) -> Event | None:
        """Write the outcome, its event and the task's rollout under the lease token; None when the
        lease was lost."""
        async with self.db.write_session() as s:
            if spans:
                await s.execute(insert(TraceSpan), spans)
            res = await s.execute(
                update(Task)
                .where(Task.id == task.id, Task.lease_token == task.lease_token, Task.status == "running")
                .values(completed_at=now, lease_expires_at=None, **values)
                .returning(Task.created_by, Task.started_at)
                .execution_options(synchronize_session=False)
            )
            found = res.first()
            stored = None
            if found is not None:
                stored = await record_event(
                    s, "tasks", event, event_data, task_id=task.id, agent_id=task.agent.id, owner=found.created_by
                )
                if rollout is not None:
                    await rollout.write(s, owner=found.created_by, started_at=found.started_at, now=now)
            await s.commit()
        return stored

    def greatest(self, *args: Any) -> Any:
        """SQL ``GREATEST``."""
        return func.greatest(*args)


class PostgresQueue(QueueDialect):
    """PostgreSQL: batch claims under row locks, single-statement assign and finish."""

    name = "postgresql"
    replay_first = False  # the insert itself detects a taken key: replays cost a lookup, new tasks none

    def __init__(self, db: Database, lease: timedelta) -> None:
        super().__init__(db, lease)
        #: Tasks queued and outcomes stored together share a statement.
        self.assigns = queue_pg.AssignWriter(db)
        self.outcomes = queue_pg.OutcomeWriter(db)

    async def insert(
        self,
        agents: AgentService,
        agent_id: int | str | None,
        agent_type: str | None,
        values: dict[str, Any],
        event_data: dict[str, Any],
    ) -> Inserted | AppError | None:
        ref: int | str = agent_id if agent_id is not None else (await agents.pick_for_type(str(agent_type))).id
        stored_data = jsonable(event_data)
        request = queue_pg.assign_row(
            self.assigns.number(), ref, agent_type if agent_id is not None else None, values, stored_data
        )
        found = await self.assigns.submit(request)
        if found is None or found["id"] is None:
            raise await agents.not_found(ref)
        task_id, agent_name, agent_kind = found["task_id"], found["name"], found["type"]
        if task_id is None:
            if agent_type is not None and agent_id is not None and agent_type not in (agent_kind, agent_name):
                return ValidationFailed(
                    "VALIDATION_ERROR", f"Agent '{agent_name}' is of type '{agent_kind}', not '{agent_type}'"
                )
            if found["status"] == "disabled":
                return Conflict(
                    "AGENT_DISABLED", f"Agent '{agent_name}' is disabled", details={"agent_id": found["id"]}
                )
            return None
        data = stored_data | {
            "task_id": task_id,
            "agent_id": found["id"],
            "agent_name": agent_name,
            "agent_type": agent_kind,
        }
        event = stored_event(
            found["event_id"],
            "tasks",
            "task_created",
            data,
            owner=values.get("created_by"),
            created_at=values["created_at"],
        )
        return Inserted(task_id, found["id"], agent_name, agent_kind, event)

    async def claim(self, worker_id: str, limit: int, now: datetime) -> tuple[list[ClaimedTask], list[Event]]:
        """Two statements in one transaction: lock the agents with work, then lease a batch."""
        async with self.db.driver_connection() as conn, conn.transaction():
            locked = await queue_pg.LOCK_AGENTS.fetch(conn, {})
            if not locked:
                self.blocked_by_limits = False
                return [], []
            # Read on another connection when an agent changed (a read does not wait for our locks).
            profiles = await self.profiles.get_many(self.db, {a["id"]: a["config_version"] for a in locked})
            self.blocked_by_limits = any(
                a["running"] >= profiles[a["id"]].max_concurrency for a in locked if a["id"] in profiles
            )
            agent_ids = [a["id"] for a in locked if a["id"] in profiles]
            rows = await queue_pg.CLAIM_BATCH.fetch(
                conn,
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
        rows = sorted(rows, key=lambda r: (-r["priority_rank"], r["id"]))
        claimed = [
            ClaimedTask(
                id=r["id"],
                description=r["task_description"],
                context=r["context"] or {},
                session_id=r["session_id"],
                priority=r["priority"],
                attempts=r["attempts"],
                max_attempts=r["max_attempts"],
                lease_token=r["lease_token"],
                agent=profiles[r["agent_id"]],
                created_by=r["created_by"],
            )
            for r in rows
        ]
        events = [
            stored_event(r["event_id"], "tasks", "task_started", r["event_data"], owner=r["created_by"], created_at=now)
            for r in rows
        ]
        return claimed, events

    async def finish(
        self,
        task: ClaimedTask,
        spans: list[dict[str, Any]],
        values: dict[str, Any],
        event: str,
        event_data: dict[str, Any],
        now: datetime,
        rollout: TaskRollout | None = None,
    ) -> Event | None:
        data = jsonable(event_data)
        outcome = queue_pg.outcome_row(task.id, task.lease_token, values, now, event, data, rollout)
        found = await self.outcomes.submit((outcome, queue_pg.span_rows(spans)))
        if found is None:
            return None
        return stored_event(found["event_id"], "tasks", event, data, owner=found["created_by"], created_at=now)


def _limit_expr() -> Any:
    """An agent's concurrency limit from its JSON config, in SQL."""
    return func.coalesce(Agent.config["max_concurrency"].as_integer(), DEFAULT_MAX_CONCURRENCY)


@functools.cache
def sqlite_next_task() -> Any:
    """The id of the next task SQLite's claim leases (a scalar subquery of its ``UPDATE``): the
    first pending task, by priority then age, of an active agent below its concurrency limit.

    Built once: it has no parameters, and building it (aliases, correlation) cost more CPU than
    running it."""
    cand, other = aliased(Task), aliased(Task)
    # ``status IN ('pending', 'running')`` repeats, term for term, the WHERE of the partial index
    # ``idx_tasks_agent_active`` (agent_id, status): SQLite uses a partial index only when the
    # query states its condition, and otherwise counted through every task the agent ever ran.
    running = (
        select(func.count())
        .select_from(other)
        .where(other.agent_id == Agent.id, other.status.in_(("pending", "running")), other.status == "running")
        .scalar_subquery()
    )
    # Active agents below their concurrency limit, counted once per agent in the statement (a
    # count per pending candidate made each claim visit the running tasks of every pending
    # row's agent: about 30 ms of CPU a task with a few hundred queued).
    open_agents = select(Agent.id).where(Agent.status == "active", running < _limit_expr())
    return (
        select(cand.id)
        .where(cand.status == "pending", cand.agent_id.in_(open_agents))
        .order_by(cand.priority_rank.desc(), cand.id)
        .limit(1)
        .scalar_subquery()
    )


class SqliteQueue(QueueDialect):
    """SQLite (one host): one atomic ``UPDATE ... RETURNING`` claim at a time."""

    name = "sqlite"

    def __init__(self, db: Database, lease: timedelta) -> None:
        super().__init__(db, lease)
        self._claim_lock = asyncio.Lock()

    def greatest(self, *args: Any) -> Any:
        return func.max(*args)

    async def claim(self, worker_id: str, limit: int, now: datetime) -> tuple[list[ClaimedTask], list[Event]]:
        claimed: list[ClaimedTask] = []
        events: list[Event] = []
        self.blocked_by_limits = True  # not tracked on SQLite: a finished task may always free a slot
        async with self._claim_lock:
            for _ in range(limit):
                one = await self._claim_one(worker_id, now)
                if one is None:
                    break
                claimed.append(one[0])
                events.append(one[1])
        return claimed, events

    async def _claim_one(self, worker_id: str, now: datetime) -> tuple[ClaimedTask, Event] | None:
        pick = sqlite_next_task()
        lease = (
            update(Task)
            .values(
                status="running",
                started_at=now,
                attempts=Task.attempts + 1,
                lease_owner=worker_id,
                lease_token=literal(uuid.uuid4().hex) + literal(":") + cast(Task.id, String),
                lease_expires_at=now + self.lease,
                error_message=None,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.db.write_session() as s:
            row = (
                await s.execute(lease.where(Task.id == pick, Task.status == "pending").returning(Task))
            ).scalar_one_or_none()
            if row is None:
                await s.rollback()
                return None
            agent = await s.get(Agent, row.agent_id)
            assert agent is not None
            await AgentService.touch_activity(s, [agent.id], now)
            event = await record_event(
                s,
                "tasks",
                "task_started",
                {
                    "task_id": row.id,
                    "agent_id": agent.id,
                    "agent_name": agent.name,
                    "agent_type": agent.type,
                    "status": "running",
                    "priority": row.priority,
                    "attempts": row.attempts,
                    "session_id": row.session_id,
                },
                task_id=row.id,
                agent_id=agent.id,
                owner=row.created_by,
            )
            await s.commit()
        claimed = ClaimedTask(
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
        return claimed, event


def queue_dialect_for(db: Database, lease: timedelta) -> QueueDialect:
    """The queue implementation for ``db``'s dialect, one per database and lease in a process, so
    that every scheduler of the process shares its batches and its agent profiles."""
    by_lease = _QUEUES.setdefault(db, {})
    queue = by_lease.get(lease)
    if queue is None:
        queue = by_lease[lease] = PostgresQueue(db, lease) if db.dialect == "postgresql" else SqliteQueue(db, lease)
    return queue


#: The queues of each live database (see :func:`queue_dialect_for`).
_QUEUES: weakref.WeakKeyDictionary[Database, dict[timedelta, QueueDialect]] = weakref.WeakKeyDictionary()
