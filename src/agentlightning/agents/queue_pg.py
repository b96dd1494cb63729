"""PostgreSQL statements of the task queue's hot path, each built to cost as few round trips as possible.

* :data:`ASSIGN` resolves the agent, checks it is not disabled, and inserts the task
  (``ON CONFLICT (idempotency_key) DO NOTHING``) in one statement, for one request or for several
  that arrived together (:class:`AssignWriter`).
* :data:`LOCK_AGENTS` + :data:`CLAIM_BATCH` claim a batch in two statements.  The first locks
  the active agents that have pending work, in id order (no deadlocks between workers); the
  second, run after the locks are held and therefore with a snapshot that sees every claim
  committed before, counts each agent's running tasks, picks up to its free slots per agent
  (``FOR UPDATE SKIP LOCKED``), keeps the best ``limit`` by priority then FIFO and leases them,
  and sets the agents' ``last_activity`` (a CTE written by their owner,
  :data:`agentlightning.agents.service.PG_TOUCH_ACTIVITY_CTE`; the rows are already locked).  One statement cannot do both: its
  snapshot is taken before it waits for an agent lock, so its running counts could miss a
  concurrent claim.
* :data:`FINISH` writes the trace spans, the outcomes and the tasks' rollouts (with their verifier
  rewards, :mod:`agentlightning.rollouts.capture`) together (one statement, so a task's trace,
  rollout and result commit atomically even in autocommit mode), for one task or for several
  whose outcomes arrived together (:class:`OutcomeWriter`).

Each statement that changes a task's state also inserts its event into ``task_events`` (the
outbox): ``task_created``, ``task_started``, ``task_completed``/``task_failed`` commit with the
change they announce.  These statements are used only by
:class:`agentlightning.agents.queue_sql.PostgresQueue`.

All are constant ``text()`` statements: compiled once per process, prepared once per connection.
They are :class:`DriverStatement`\ s, run on the driver's connection without SQLAlchemy's
per-statement work (see :mod:`agentlightning.storage.driver`); assign and finish are shared by the
requests or outcomes that arrive together (:mod:`agentlightning.storage.batching`).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from agentlightning.agents.service import PG_TOUCH_ACTIVITY_CTE
from agentlightning.rollouts.capture import PG_FINISH_COLUMNS, PG_FINISH_CTES, PG_NO_ROLLOUT, TaskRollout
from agentlightning.storage.batching import StatementBatcher
from agentlightning.storage.driver import DriverStatement
from agentlightning.storage.types import Timestamp

if TYPE_CHECKING:
    from agentlightning.storage.db import Database

#: Queue tasks, one per request row: resolve each request's agent (by id or by name), refuse a
#: disabled agent or one of another type, insert the task (``ON CONFLICT (idempotency_key) DO
#: NOTHING``) and its ``task_created`` event.  Task ids are drawn before the insert, so each
#: inserted row is matched back to its request (``n``).
ASSIGN = DriverStatement(
    text(
        """
        WITH r AS (
            SELECT * FROM jsonb_to_recordset(CAST(:requests AS jsonb)) AS r(
                n integer, agent_ref_id integer, agent_ref_name text, agent_type text, task_description text,
                priority text, priority_rank smallint, context jsonb, session_id text, max_attempts integer,
                idempotency_key text, request_hash text, created_by text, created_at timestamptz, event_data jsonb)
        ), agent AS (
            SELECT r.n, a.id, a.name, a.type, a.status FROM r JOIN agents a ON a.id = r.agent_ref_id
            UNION ALL
            SELECT r.n, a.id, a.name, a.type, a.status FROM r JOIN agents a ON a.name = r.agent_ref_name
            WHERE r.agent_ref_id IS NULL
        ), allowed AS (
            SELECT r.*, agent.id AS agent_id, agent.name AS agent_name, agent.type AS agent_kind,
                   nextval(pg_get_serial_sequence('tasks', 'id')) AS task_id
            FROM r JOIN agent ON agent.n = r.n
            WHERE agent.status <> 'disabled'
              AND (r.agent_type IS NULL OR agent.type = r.agent_type OR agent.name = r.agent_type)
        ), inserted AS (
            INSERT INTO tasks (id, agent_id, task_description, status, priority, priority_rank, context, session_id,
                               attempts, max_attempts, idempotency_key, request_hash, created_by, created_at)
            SELECT task_id, agent_id, task_description, 'pending', priority, priority_rank, context, session_id, 0,
                   max_attempts, idempotency_key, request_hash, created_by, created_at
            FROM allowed
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id
        ), event AS (
            INSERT INTO task_events (topic, event, task_id, agent_id, owner, data, created_at)
            SELECT 'tasks', 'task_created', allowed.task_id, allowed.agent_id, allowed.created_by,
                   allowed.event_data || jsonb_build_object('task_id', allowed.task_id, 'agent_id', allowed.agent_id,
                                                            'agent_name', allowed.agent_name,
                                                            'agent_type', allowed.agent_kind),
                   allowed.created_at
            FROM allowed JOIN inserted ON inserted.id = allowed.task_id
            RETURNING id, task_id
        )
        SELECT r.n, agent.id, agent.name, agent.type, agent.status, inserted.id AS task_id, event.id AS event_id
        FROM r
        LEFT JOIN agent ON agent.n = r.n
        LEFT JOIN allowed ON allowed.n = r.n
        LEFT JOIN inserted ON inserted.id = allowed.task_id
        LEFT JOIN event ON event.task_id = inserted.id
        """
    ).bindparams(bindparam("requests", type_=JSONB))
)


def assign_row(
    n: int, agent_ref: int | str, agent_type: str | None, values: dict[str, Any], event_data: dict[str, Any]
) -> dict[str, Any]:
    """Request ``n`` of :data:`ASSIGN`: queue a task (``values``) for ``agent_ref`` (id or name).

    Its result row has ``(id, name, type, status)`` of the agent (NULL when there is none) and
    ``task_id`` (NULL when the agent is disabled, of another type than ``agent_type``, or the
    idempotency key was already used); ``event_id`` is the stored ``task_created`` event.
    """
    by_id = isinstance(agent_ref, int) or (isinstance(agent_ref, str) and agent_ref.isdigit())
    row = {k: v for k, v in values.items() if k not in ("agent_id", "status", "attempts")}
    return row | {
        "n": n,
        "agent_ref_id": int(agent_ref) if by_id else None,
        "agent_ref_name": None if by_id else str(agent_ref),
        "agent_type": agent_type,
        "created_at": values["created_at"].isoformat(),
        "event_data": event_data,
    }


#: Lock the active agents with pending work (id order); ``running`` is a pre-lock estimate.
LOCK_AGENTS = DriverStatement(
    text(
        """
    SELECT a.id, a.config_version,
           (SELECT count(*) FROM tasks r WHERE r.agent_id = a.id AND r.status = 'running') AS running
    FROM agents a
    WHERE a.status = 'active'
      AND EXISTS (SELECT 1 FROM tasks p WHERE p.agent_id = a.id AND p.status = 'pending')
    ORDER BY a.id
    FOR UPDATE OF a
    """
    )
)

#: Lease up to ``:limit`` pending tasks of the locked agents within each one's free slots.
CLAIM_BATCH = DriverStatement(
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
        ), leased AS (
            UPDATE tasks
            SET status = 'running', started_at = :now, attempts = tasks.attempts + 1, lease_owner = :owner,
                lease_token = :claim || ':' || tasks.id, lease_expires_at = :expires, error_message = NULL
            FROM picked
            WHERE tasks.id = picked.id
            RETURNING tasks.id, tasks.agent_id, tasks.task_description, tasks.context, tasks.session_id,
                      tasks.priority, tasks.priority_rank, tasks.attempts, tasks.max_attempts, tasks.lease_token,
                      tasks.created_by
        ), started AS (
            INSERT INTO task_events (topic, event, task_id, agent_id, owner, data, created_at)
            SELECT 'tasks', 'task_started', l.id, l.agent_id, l.created_by,
                   jsonb_build_object('task_id', l.id, 'agent_id', l.agent_id, 'agent_name', a.name,
                                      'agent_type', a.type, 'status', 'running', 'priority', l.priority,
                                      'attempts', l.attempts, 'session_id', l.session_id),
                   :now
            FROM leased l JOIN agents a ON a.id = l.agent_id
            RETURNING id, task_id, data
        )"""
        + PG_TOUCH_ACTIVITY_CTE
        + """
        SELECT l.*, started.id AS event_id, started.data AS event_data
        FROM leased l JOIN started ON started.task_id = l.id
        """
    ).bindparams(
        bindparam("agent_ids", type_=ARRAY(Integer)),
        bindparam("limits", type_=ARRAY(Integer)),
        bindparam("limit", type_=Integer),
        bindparam("now", type_=Timestamp),
        bindparam("expires", type_=Timestamp),
        bindparam("owner", type_=String),
        bindparam("claim", type_=String),
    )
)


FINISH = DriverStatement(
    text(
        """
        WITH o AS (
            SELECT * FROM jsonb_to_recordset(CAST(:outcomes AS jsonb)) AS o(
                task_id integer, lease_token text, status text, result jsonb, execution_time_ms integer,
                error_message text, completed_at timestamptz, event text, event_data jsonb, """
        + PG_FINISH_COLUMNS
        + """)
        ), spans AS (
            INSERT INTO trace_spans (trace_id, span_id, parent_span_id, task_id, agent_id, kind, name, status,
                                     input, output, error, model, prompt_tokens, completion_tokens, latency_ms,
                                     attributes, started_at, ended_at, rollout_id)
            SELECT s.trace_id, s.span_id, s.parent_span_id, s.task_id, s.agent_id, s.kind, s.name, s.status,
                   s.input, s.output, s.error, s.model, s.prompt_tokens, s.completion_tokens, s.latency_ms,
                   COALESCE(s.attributes, '{}'::jsonb), s.started_at, s.ended_at, s.rollout_id
            FROM jsonb_to_recordset(CAST(:spans AS jsonb)) AS s(
                trace_id text, span_id text, parent_span_id text, task_id integer, agent_id integer, kind text,
                name text, status text, input jsonb, output jsonb, error text, model text, prompt_tokens integer,
                completion_tokens integer, latency_ms double precision, attributes jsonb,
                started_at timestamptz, ended_at timestamptz, rollout_id text)
        ), finished AS (
            UPDATE tasks
            SET status = o.status, result = o.result, execution_time_ms = o.execution_time_ms,
                error_message = o.error_message, completed_at = o.completed_at, lease_expires_at = NULL
            FROM o
            WHERE tasks.id = o.task_id AND tasks.lease_token = o.lease_token AND tasks.status = 'running'
            RETURNING tasks.id, tasks.agent_id, tasks.created_by, tasks.started_at, tasks.lease_token
        ), event AS (
            INSERT INTO task_events (topic, event, task_id, agent_id, owner, data, created_at)
            SELECT 'tasks', o.event, finished.id, finished.agent_id, finished.created_by, o.event_data, o.completed_at
            FROM finished JOIN o ON o.task_id = finished.id AND o.lease_token = finished.lease_token
            RETURNING id, task_id
        )"""
        + PG_FINISH_CTES
        + """
        SELECT finished.id, finished.lease_token, finished.created_by, event.id AS event_id
        FROM finished JOIN event ON event.task_id = finished.id
        """
    ).bindparams(bindparam("outcomes", type_=JSONB), bindparam("spans", type_=JSONB))
)


def outcome_row(
    task_id: int,
    lease_token: str,
    values: dict[str, Any],
    now: datetime,
    event: str,
    event_data: dict[str, Any],
    rollout: TaskRollout | None = None,
) -> dict[str, Any]:
    """One outcome of :data:`FINISH`: written under the lease token, with its terminal event
    (``event``: ``task_completed`` or ``task_failed``) and the task's rollout (with its verifier
    reward).

    The statement returns a row for each outcome whose lease was still held (none: the result
    was discarded, while its spans are kept), so a terminal state has exactly one terminal event.
    """
    return {
        "task_id": task_id,
        "lease_token": lease_token,
        "status": values["status"],
        "result": values.get("result"),
        "execution_time_ms": values.get("execution_time_ms"),
        "error_message": values.get("error_message"),
        "completed_at": now.isoformat(),
        "event": event,
        "event_data": event_data,
    } | (rollout.pg_parameters() if rollout is not None else PG_NO_ROLLOUT)


def span_rows(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trace span rows as :data:`FINISH` reads them (timestamps as ISO text)."""
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in span.items()} for span in spans]


class AssignWriter(StatementBatcher):
    """Queues tasks (:data:`ASSIGN`); requests that arrive together share a statement."""

    what = "tasks"

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._numbers = itertools.count()

    def number(self) -> int:
        """A request number unique among this writer's requests."""
        return next(self._numbers)

    def key(self, item: Any) -> Hashable:
        return item["n"]

    async def run(self, conn: Any, items: Sequence[Any]) -> dict[Hashable, Any]:
        return {row["n"]: row for row in await ASSIGN.fetch(conn, {"requests": list(items)})}


class OutcomeWriter(StatementBatcher):
    """Stores task outcomes (:data:`FINISH`) with their spans; outcomes that arrive together
    share a statement.  An item is ``(outcome_row(...), span_rows(...))``."""

    what = "outcomes"

    def key(self, item: Any) -> Hashable:
        # A task reclaimed by this worker may have two runs' outcomes in one batch: the lease tells them apart.
        return item[0]["task_id"], item[0]["lease_token"]

    async def run(self, conn: Any, items: Sequence[Any]) -> dict[Hashable, Any]:
        params = {"outcomes": [outcome for outcome, _ in items], "spans": [s for _, spans in items for s in spans]}
        return {(row["id"], row["lease_token"]): row for row in await FINISH.fetch(conn, params)}
