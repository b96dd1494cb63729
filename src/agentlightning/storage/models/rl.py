"""The spec's ``rl_experiments`` table and the RL orchestrator's own tables (owned by ``agentlightning.rl``).

Beyond the spec's columns, an experiment carries its lifecycle state: the error that ended it,
the backend it runs on, who created it, a stop request, and the lease (owner + heartbeat) of the
manager running it, so a restarted server can recover it (migration ``0004_rl``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow
from agentlightning.vocabulary import EXPERIMENT_STATUSES, check_sql

#: BIGINT on PostgreSQL; INTEGER on SQLite so the key is the rowid (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class RLExperiment(Base):
    """One reinforcement-learning experiment and its streamed results."""

    __tablename__ = "rl_experiments"
    __table_args__ = (
        Index("idx_rl_experiments_status", "status"),
        Index("idx_rl_experiments_agent_id", "agent_id"),
        CheckConstraint(check_sql("status", EXPERIMENT_STATUSES), name="status"),  # 0007
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    algorithm: Mapped[str] = mapped_column(String(50), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(String(50), default="created", server_default="created")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    start_time: Mapped[datetime | None] = mapped_column(Timestamp)
    end_time: Mapped[datetime | None] = mapped_column(Timestamp)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    checkpoints: Mapped[list[Any]] = mapped_column(JSONType, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    # 0004_rl: lifecycle state
    #: ``classic`` (SB3 on Gymnasium); agent optimisation kinds (apo, bandit, grpo) come later.
    kind: Mapped[str] = mapped_column(String(30), default="classic", server_default="classic")
    backend: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    stop_requested_at: Mapped[datetime | None] = mapped_column(Timestamp)
    #: The manager instance running the experiment and when it last renewed its lease.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)
    #: How many times a run was launched (1 + resumes).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RLMetricPoint(Base):
    """One streamed update of an experiment: training progress or an evaluation."""

    __tablename__ = "rl_metric_points"
    __table_args__ = (Index("idx_rl_metric_points_experiment", "experiment_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("rl_experiments.id", ondelete="CASCADE"), nullable=False)
    #: ``progress`` or ``evaluation``.
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    timesteps: Mapped[int] = mapped_column(BigInteger, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class RLEnvironment(Base):
    """A user Gymnasium environment registered by entry point (``module:Class``)."""

    __tablename__ = "rl_environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    entry_point: Mapped[str] = mapped_column(String(500), nullable=False)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    max_episode_steps: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
