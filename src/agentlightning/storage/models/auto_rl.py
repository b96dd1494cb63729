"""Auto-RL's own tables (owned by ``agentlightning.rl.auto``, migrations ``0015_auto_rl`` and
``0019_one_running_trigger_per_agent``).

- ``auto_rl_policies``: one row per agent that overrides the system configuration's ``auto_rl``
  block (a null column follows the system default);
- ``auto_rl_triggers``: every optimisation Auto-RL started (by the monitor or by hand), the
  window statistics that caused it, its experiment and how it ended;
- ``auto_rl_promotions``: the history of resource changes (promotions and rollbacks) with the
  resources before and after, the held-out scores and the gate's p-value;
- ``auto_rl_leases``: a named lease so that one monitor acts across replicas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow


class AutoRLPolicy(Base):
    """Per-agent overrides of when and how Auto-RL improves the agent."""

    __tablename__ = "auto_rl_policies"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    window: Mapped[int | None] = mapped_column(Integer)
    min_samples: Mapped[int | None] = mapped_column(Integer)
    success_threshold: Mapped[float | None] = mapped_column(Float)
    cooldown_minutes: Mapped[int | None] = mapped_column(Integer)
    algorithm: Mapped[str | None] = mapped_column(String(50))
    max_evaluations: Mapped[int | None] = mapped_column(Integer)
    max_wall_seconds: Mapped[int | None] = mapped_column(Integer)
    alpha: Mapped[float | None] = mapped_column(Float)
    #: Algorithm settings passed to the optimiser (``rounds``, ``beam_width``, ...) and task sizes.
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    updated_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class AutoRLTrigger(Base):
    """One optimisation Auto-RL started for an agent."""

    __tablename__ = "auto_rl_triggers"
    __table_args__ = (
        Index("idx_auto_rl_triggers_agent", "agent_id", "created_at"),
        # At most one running optimisation per agent (migration ``0019_one_running_trigger_per_agent``).
        Index(
            "uq_auto_rl_triggers_running",
            "agent_id",
            unique=True,
            postgresql_where=text("outcome = 'running'"),
            sqlite_where=text("outcome = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("rl_experiments.id", ondelete="SET NULL"))
    #: ``monitor`` (the policy said so) or ``manual`` (``POST /api/v2/rl/auto-trigger``).
    reason: Mapped[str] = mapped_column(String(20), nullable=False)
    algorithm: Mapped[str] = mapped_column(String(50), nullable=False)
    #: ``running`` -> ``promoted`` | ``rejected`` | ``failed`` | ``stopped`` (vocabulary ``AutoRLOutcome``).
    outcome: Mapped[str] = mapped_column(String(20), nullable=False, default="running")
    n: Mapped[int] = mapped_column(Integer, default=0)
    success_rate: Mapped[float | None] = mapped_column(Float)
    mean_reward: Mapped[float | None] = mapped_column(Float)
    triggered_by: Mapped[str | None] = mapped_column(String(255))
    decision: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class AutoRLPromotion(Base):
    """A change of an agent's resources by Auto-RL: a promotion, or a rollback of one."""

    __tablename__ = "auto_rl_promotions"
    __table_args__ = (Index("idx_auto_rl_promotions_agent", "agent_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), nullable=False)
    #: ``promotion`` or ``rollback``.
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("rl_experiments.id", ondelete="SET NULL"))
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("auto_rl_triggers.id", ondelete="SET NULL"))
    before: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    after: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    version_before: Mapped[int] = mapped_column(Integer, nullable=False)
    version_after: Mapped[int] = mapped_column(Integer, nullable=False)
    incumbent_score: Mapped[float | None] = mapped_column(Float)
    candidate_score: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    n_heldout: Mapped[int | None] = mapped_column(Integer)
    gain_pp: Mapped[float | None] = mapped_column(Float)
    #: Set on a promotion once it was rolled back.
    rolled_back_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_by: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AutoRLLease(Base):
    """A named lease (``monitor``): the replica holding it acts, the others wait."""

    __tablename__ = "auto_rl_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
