"""The spec's ``agents`` table plus agent memory (owned by ``agentlightning.agents``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow
from agentlightning.vocabulary import AGENT_STATUSES, check_sql


class Agent(Base):
    """A registered agent: its type, configuration and running statistics."""

    __tablename__ = "agents"
    __table_args__ = (
        Index("idx_agents_type", "type"),
        Index("idx_agents_status", "status"),
        Index("idx_agents_last_activity", "last_activity"),
        CheckConstraint(check_sql("status", AGENT_STATUSES), name="status"),  # 0007
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(50), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    performance_metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    last_activity: Mapped[datetime | None] = mapped_column(Timestamp)
    #: Incremented on every configuration change; part of the response-cache key (migration 0002).
    config_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)


class AgentMessage(Base):
    """One turn of a conversation session with an agent (short-term memory)."""

    __tablename__ = "agent_messages"
    __table_args__ = (Index("idx_agent_messages_owner_session", "agent_id", "owner", "session_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), nullable=False)
    #: The user whose conversation this is (``tasks.created_by``); a session id is only unique per
    #: user, so another user reusing it starts a conversation of their own (migration 0009).
    owner: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str] = mapped_column(String(128), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    task_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AgentNote(Base):
    """A long-term note an agent keeps across sessions (written by the ``memory`` tool)."""

    __tablename__ = "agent_notes"
    __table_args__ = (Index("idx_agent_notes_owner", "agent_id", "owner", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), nullable=False)
    #: The user the agent keeps this note for (migration 0009).
    owner: Mapped[str | None] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text, nullable=False)
    task_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
