"""The spec's ``rl_experiments`` table (owned by ``agentlightning.rl``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow


class RLExperiment(Base):
    """One reinforcement-learning experiment and its streamed results."""

    __tablename__ = "rl_experiments"
    __table_args__ = (
        Index("idx_rl_experiments_status", "status"),
        Index("idx_rl_experiments_agent_id", "agent_id"),
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
