"""The audit log of administrative changes (owned by ``agentlightning.audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow


class AuditEntry(Base):
    """One administrative change: who did what to whom, with which request, when."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("idx_audit_log_created_at", "created_at"),
        Index("idx_audit_log_action", "action"),
        Index("idx_audit_log_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The acting user's id and name (``None``/``"cli"`` for the command line); no foreign key: the
    #: entry outlives whatever it names.
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(64), nullable=False)
    target_id: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(255), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
