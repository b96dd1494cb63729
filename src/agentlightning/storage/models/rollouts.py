"""Rollouts and rewards (owned by ``agentlightning.rollouts``; migration ``0012``).

A rollout is one run of an agent: a task run by the platform's workers, a run of an agent
instrumented with the SDK, a conversation through the gateway, or a workflow run.  Its steps are
``trace_spans`` rows carrying its ``rollout_id``; its rewards are ``rewards`` rows, on the whole
rollout or on one span.  ``rollouts.reward`` is the latest rollout-level reward (the training
signal); the rows of ``rewards`` keep every one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow
from agentlightning.vocabulary import REWARD_SOURCES, ROLLOUT_SOURCES, ROLLOUT_STATUSES, check_sql


class Rollout(Base):
    """One run of an agent, from any source, with its input, output and final reward."""

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("idx_rollouts_agent_created", "agent_id", "created_at"),
        Index("idx_rollouts_source", "source"),
        Index("idx_rollouts_reward", "reward"),
        Index("idx_rollouts_owner_created", "owner", "created_at"),
        Index("idx_rollouts_parent", "parent_id"),
        CheckConstraint(check_sql("status", ROLLOUT_STATUSES), name="status"),
        CheckConstraint(check_sql("source", ROLLOUT_SOURCES), name="source"),
    )

    #: A uuid4 hex chosen by the server, ``task-<id>`` for a task's run, or a client's own id.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), unique=True)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="running")
    #: The username that created it (the task's ``created_by``, the API key's owner, ...).
    owner: Mapped[str | None] = mapped_column(String(255))
    input: Mapped[Any] = mapped_column(JSONType)
    output: Mapped[Any] = mapped_column(JSONType)
    reward: Mapped[float | None] = mapped_column(Float)
    #: ``metadata`` is reserved on declarative classes: the attribute is ``meta``.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Reward(Base):
    """One reward of a rollout (or of one of its spans), with who gave it and why."""

    __tablename__ = "rewards"
    __table_args__ = (
        Index("idx_rewards_rollout", "rollout_id"),
        Index("idx_rewards_created", "created_at"),
        CheckConstraint(check_sql("source", REWARD_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False)
    #: Set for an intermediate reward on one step; NULL for a reward of the whole rollout.
    span_id: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, nullable=False)
