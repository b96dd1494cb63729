"""The spec's ``tasks`` table, which is also the durable task queue, and the trace spans of
task runs (owned by ``agentlightning.agents``; the RL package reads ``trace_spans``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow
from agentlightning.vocabulary import TASK_PRIORITIES, TASK_STATUSES, check_sql

#: BIGINT on PostgreSQL; INTEGER on SQLite, where only an INTEGER PRIMARY KEY is the rowid.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Task(Base):
    """One unit of work assigned to an agent; also a queue entry with a lease while it runs."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("idx_tasks_status", "status"),
        Index("idx_tasks_agent_id", "agent_id"),
        Index("idx_tasks_created_at", "created_at"),
        Index("idx_tasks_queue", "status", "priority_rank", "id"),  # SQLite: priority_rank DESC (0021)
        Index("idx_tasks_lease", "status", "lease_expires_at"),
        CheckConstraint(check_sql("status", TASK_STATUSES), name="status"),  # 0007
        CheckConstraint(check_sql("priority", TASK_PRIORITIES), name="priority"),  # 0007
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_description: Mapped[str] = mapped_column(Text, nullable=False)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(50), default="pending", server_default="pending")
    priority: Mapped[str] = mapped_column(String(20), default="medium", server_default="medium")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    execution_time_ms: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    # --- queue columns (migration 0002) ---------------------------------------------------
    #: Higher runs first (low=0, medium=1, high=2, critical=3); FIFO by id within a rank.
    priority_rank: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1", nullable=False)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    session_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3", nullable=False)
    #: The worker holding the lease, and a token unique to this claim (guards the single write).
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(255))


class TaskEvent(Base):
    """The event log (an outbox): every published event, stored with an increasing id first.

    Task events are inserted in the same transaction as the task's state change, so a terminal
    state always has exactly one terminal event; publishing (Redis) happens after the commit, and
    a subscriber that missed some (an outage, a reconnect) reads them back by id.  ``owner`` is
    the task's ``created_by``, so delivery can apply the same visibility as REST.
    """

    __tablename__ = "task_events"
    __table_args__ = (
        Index("idx_task_events_task", "task_id"),
        Index("idx_task_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(32), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    task_id: Mapped[int | None] = mapped_column(Integer)
    agent_id: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, nullable=False)


class TraceSpan(Base):
    """One step of a task run: the whole run, an LLM call or a tool call.

    ``trace_id`` groups the spans of one run attempt; ``parent_span_id`` nests LLM and tool
    spans under the run span.  Inputs/outputs are JSON as sent and received.
    """

    __tablename__ = "trace_spans"
    __table_args__ = (
        Index("idx_trace_spans_task", "task_id"),
        Index("idx_trace_spans_agent_time", "agent_id", "started_at"),
        Index("idx_trace_spans_trace", "trace_id"),
        Index("idx_trace_spans_rollout", "rollout_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    span_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(32))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    #: ``agent_run`` | ``llm`` | ``tool``
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    #: ``ok`` | ``error``
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="ok")
    input: Mapped[Any] = mapped_column(JSONType)
    output: Mapped[Any] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    #: The rollout this span belongs to (migration 0012; no foreign key: a task's spans of a
    #: failed attempt are written before its rollout row, which the final outcome creates).
    rollout_id: Mapped[str | None] = mapped_column(String(64))
