"""The spec's ``knowledge_items`` table (owned by ``agentlightning.knowledge``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, StringList, Timestamp, utcnow


class KnowledgeItem(Base):
    """A piece of knowledge agents can search; ``version`` counts its updates."""

    __tablename__ = "knowledge_items"
    __table_args__ = (Index("idx_knowledge_category", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    category: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str] | None] = mapped_column(StringList)
    #: The ``metadata`` column (the attribute name is reserved by SQLAlchemy).
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
