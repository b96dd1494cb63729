"""PostgreSQL statements of the task queue's hot path, each built to cost as few round trips as possible.

* :func:`assign_statement` resolves the agent, checks it is not disabled, and inserts the task
  (``ON CONFLICT (idempotency_key) DO NOTHING``) in one statement.
* :data:`LOCK_AGENTS` + :data:`CLAIM_BATCH` claim a batch in two statements.  The first locks
  the active agents that have pending work, in id order (no deadlocks between workers); the
  second, run after the locks are held and therefore with a snapshot that sees every claim
  committed before, counts each agent's running tasks, picks up to its free slots per agent
  (``FOR UPDATE SKIP LOCKED``), keeps the best ``limit`` by priority then FIFO, leases them and
  touches the agents' ``last_activity``.  One statement cannot do both: its snapshot is taken
  before it waits for an agent lock, so its running counts could miss a concurrent claim.
* :func:`finish_statement` writes the trace spans and the outcome together (one statement, so
  the task's trace and result commit atomically even in autocommit mode).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, bindparam, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from agentlightning.storage.models import Agent, Task, TraceSpan
from agentlightning.storage.types import Timestamp

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from agentlightning.storage.db import Database


@asynccontextmanager
async def autocommit(db: Database) -> AsyncIterator[AsyncConnection]:
    """A pooled connection without an explicit transaction: each statement commits by itself.

    For single statements that are atomic on their own, this saves the ``BEGIN`` and ``COMMIT``
    round trips of a session.
    """
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def assign_statement(agent_ref: int | str, agent_type: str | None, values: dict[str, Any]) -> Any:
    """Resolve ``agent_ref`` (id or name) and insert the task for it, in one statement.

    Returns one row ``(id, name, type, status, task_id)`` when the agent exists (``task_id`` is
    NULL when the agent is disabled, of another type than ``agent_type``, or the idempotency key
    was already used) and no row when it does not.
    """
    by_id = isinstance(agent_ref, int) or (isinstance(agent_ref, str) and agent_ref.isdigit())
    agent = (
        select(Agent.id, Agent.name, Agent.type, Agent.status)
        .where(Agent.id == int(agent_ref) if by_id else Agent.name == str(agent_ref))
        .cte("agent")
    )
    insertable = agent.c.status != "disabled"
    if agent_type is not None:
        insertable = insertable & (agent.c.type == agent_type)
    columns = [k for k in values if k != "agent_id"]
    source = select(
        agent.c.id,
        *(literal(values[k], Task.__table__.c[k].type).label(k) for k in columns),
    ).where(insertable)
    inserted = (
        pg_insert(Task)
        .from_select(["agent_id", *columns], source)
        .on_conflict_do_nothing(index_elements=[Task.idempotency_key])
        .returning(Task.id)
        .cte("inserted")
    )
    return select(
        agent.c.id, agent.c.name, agent.c.type, agent.c.status, select(inserted.c.id).scalar_subquery().label("task_id")
    )


#: Lock the active agents with pending work (id order); ``running`` is a pre-lock estimate.
LOCK_AGENTS = text(
    """
    SELECT a.id, a.config_version,
           (SELECT count(*) FROM tasks r WHERE r.agent_id = a.id AND r.status = 'running') AS running
    FROM agents a
    WHERE a.status = 'active'
      AND EXISTS (SELECT 1 FROM tasks p WHERE p.agent_id = a.id AND p.status = 'pending')
    ORDER BY a.id
    FOR UPDATE OF a
    """
).columns(id=Integer, config_version=Integer, running=Integer)

#: Lease up to ``:limit`` pending tasks of the locked agents within each one's free slots.
CLAIM_BATCH = (
    text(
        """
        WITH slots AS (
            SELECT l.agent_id,
                   l.max_running - (SELECT count(*) FROM tasks r
                                    WHERE r.agent_id = l.agent_id AND r.status = 'running') AS free
            FROM unnest(CAST(:agent_ids AS integer[]), CAST(:limits AS integer[])) AS l(agent_id, max_running)
        ), picked AS (
            SELECT c.id, c.agent_id
            FROM slots
            CROSS JOIN LATERAL (
                SELECT t.id, t.agent_id, t.priority_rank
                FROM tasks t
                WHERE t.agent_id = slots.agent_id AND t.status = 'pending'
                ORDER BY t.priority_rank DESC, t.id
                LIMIT GREATEST(LEAST(slots.free, :limit), 0)
                FOR UPDATE OF t SKIP LOCKED
            ) c
            ORDER BY c.priority_rank DESC, c.id
            LIMIT :limit
        ), touched AS (
            UPDATE agents SET last_activity = :now WHERE id IN (SELECT agent_id FROM picked)
        )
        UPDATE tasks
        SET status = 'running', started_at = :now, attempts = tasks.attempts + 1, lease_owner = :owner,
            lease_token = :claim || ':' || tasks.id, lease_expires_at = :expires, error_message = NULL
        FROM picked
        WHERE tasks.id = picked.id
        RETURNING tasks.id, tasks.agent_id, tasks.task_description, tasks.context, tasks.session_id,
                  tasks.priority, tasks.priority_rank, tasks.attempts, tasks.max_attempts, tasks.lease_token
        """
    )
    .bindparams(
        bindparam("agent_ids", type_=ARRAY(Integer)),
        bindparam("limits", type_=ARRAY(Integer)),
        bindparam("limit", type_=Integer),
        bindparam("now", type_=Timestamp),
        bindparam("expires", type_=Timestamp),
        bindparam("owner", type_=String),
        bindparam("claim", type_=String),
    )
    .columns(
        id=Integer,
        agent_id=Integer,
        task_description=String,
        context=JSONB,
        session_id=String,
        priority=String,
        priority_rank=Integer,
        attempts=Integer,
        max_attempts=Integer,
        lease_token=String,
    )
)


def finish_statement(task_id: int, lease_token: str, spans: list[dict[str, Any]], values: dict[str, Any], now: datetime) -> Any:
    """Write the outcome under the lease token and insert ``spans``, atomically, in one statement.

    Returns the task id when the lease was still held (no row: the result was discarded; the
    spans are still kept, as they are on the two-statement path).
    """
    stmt = (
        update(Task)
        .where(Task.id == task_id, Task.lease_token == lease_token, Task.status == "running")
        .values(completed_at=now, lease_expires_at=None, **values)
        .returning(Task.id)
    )
    if spans:
        stmt = stmt.add_cte(insert(TraceSpan).values(spans).cte("spans"))
    return stmt
