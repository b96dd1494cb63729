"""The online bandit's posteriors ``bandit_arms`` and the rewards it has handled
``bandit_observations`` (both owned by ``agentlightning.rl.optimisers.bandit_service``).

One row per (agent, task type, variant): the Beta posterior on success and the reward moments of
the Gaussian one, so what the bandit learned survives restarts (migration ``0018_bandit_arms``).
One row per rollout-level reward the bandit has taken in or passed over (migration
``0020_bandit_observations``), so each reward reaches its arm exactly once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import Timestamp, utcnow


class BanditArm(Base):
    """The posterior of one variant of one agent on one type of task."""

    __tablename__ = "bandit_arms"
    __table_args__ = (UniqueConstraint("agent_id", "task_type", "variant", name="uq_bandit_arms_arm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), nullable=False)
    task_type: Mapped[str] = mapped_column(String(64), nullable=False)
    variant: Mapped[str] = mapped_column(String(64), nullable=False)
    alpha: Mapped[float] = mapped_column(Float, nullable=False, default=1.0, server_default="1")
    beta: Mapped[float] = mapped_column(Float, nullable=False, default=1.0, server_default="1")
    #: Tasks the arm was chosen for.
    pulls: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    #: Rewards taken into the posterior.
    observations: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    reward_sum: Mapped[float] = mapped_column(Float, nullable=False, default=0.0, server_default="0")
    reward_sq_sum: Mapped[float] = mapped_column(Float, nullable=False, default=0.0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class BanditObservation(Base):
    """A rollout-level reward the bandit has handled.

    Written in the transaction that adds the reward to its arm, so a reward is learned once
    whether the in-process listener or the sweep reaches it first, and a write that failed is
    found again by the sweep.
    """

    __tablename__ = "bandit_observations"

    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id", ondelete="CASCADE"), primary_key=True)
    #: True: taken into an arm; False: passed over (the agent runs no bandit, or does not declare
    #: the variant); NULL: stored in the day before this record was kept (migration ``0020``).
    learned: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, nullable=False)
