"""The knowledge base's tables (owned by ``agentlightning.knowledge``).

``knowledge_items`` is the spec's table plus a ``content_hash`` (how a bulk import recognises
content it already has). ``knowledge_item_versions`` keeps every previous version of an item;
``knowledge_embeddings`` holds one sentence embedding per item and
``knowledge_embedding_tombstones`` logs deleted ones. Search-only structures that
differ per database (the weighted ``search_vector`` on PostgreSQL, the FTS5 table on SQLite, the
pgvector column type) are created by migration ``0003`` and queried with SQL, not mapped here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, StringList, Timestamp, utcnow


class KnowledgeItem(Base):
    """A piece of knowledge agents can search; ``version`` counts its updates."""

    __tablename__ = "knowledge_items"
    __table_args__ = (
        Index("idx_knowledge_category", "category"),
        Index("idx_knowledge_content_hash", "content_hash"),
        Index("idx_knowledge_source", "source"),
    )

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
    #: Who wrote the current version (``created_by`` until the first update).
    updated_by: Mapped[str | None] = mapped_column(String(255))
    #: SHA-256 of title, content, category and tags (see ``knowledge.ingest.parsers.content_hash``).
    content_hash: Mapped[str | None] = mapped_column(String(64))
    #: The file an imported item came from (absolute path); re-importing the file replaces its items.
    source: Mapped[str | None] = mapped_column(String(1000))


class KnowledgeItemVersion(Base):
    """A snapshot of an item as it was before an update (the current version lives in the item)."""

    __tablename__ = "knowledge_item_versions"
    __table_args__ = (UniqueConstraint("item_id", "version", name="uq_knowledge_item_versions_item_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("knowledge_items.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    category: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str] | None] = mapped_column(StringList)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict, server_default="{}")
    #: Who wrote this version (the item's creator for version 1, the updater afterwards).
    changed_by: Mapped[str | None] = mapped_column(String(255))
    #: When this version was written.
    valid_from: Mapped[datetime | None] = mapped_column(Timestamp)
    #: When it was replaced by the next version.
    valid_to: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class KnowledgeEmbedding(Base):
    """An item's sentence embedding (float32 bytes; a pgvector ``vector`` where the server has it)."""

    __tablename__ = "knowledge_embeddings"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_items.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    #: Increases on every write; in-process vector indexes catch up from their last seen value.
    rev: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class KnowledgeEmbeddingTombstone(Base):
    """A deleted embedding (written by a database trigger, migration ``0005``).

    Its ``rev`` comes from the same counter as :attr:`KnowledgeEmbedding.rev`, so an in-process
    vector index catching up from its watermark removes deleted vectors in order with new ones.
    """

    __tablename__ = "knowledge_embedding_tombstones"

    rev: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    item_id: Mapped[int] = mapped_column(Integer, nullable=False)
    deleted_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
