"""Schema for the knowledge base: versions, full-text and vector search.

- ``knowledge_items`` gains ``content_hash`` (bulk imports skip content they already have) and
  ``updated_by`` (the author of the current version).
- ``knowledge_item_versions``: every previous version of an item.
- ``knowledge_embeddings``: one sentence embedding per item, with a ``rev`` that in-process vector
  indexes use to catch up with writes made by other processes.
- PostgreSQL: a stored, weighted ``search_vector`` (title weight A above content weight B) with a
  GIN index, queried with ``websearch_to_tsquery``; the spec's ``idx_knowledge_content`` stays.
  Where the server offers the ``vector`` extension (pgvector) the embedding column is a
  ``vector(384)`` with an HNSW index; otherwise it is ``bytea`` and the application keeps an
  in-process usearch index in sync.
- SQLite: an FTS5 table over title and content (Porter stemming) kept in sync by triggers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TEXT_ARRAY = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")
EMBEDDING_DIMENSION = 384

SQLITE_FTS = [
    """CREATE VIRTUAL TABLE knowledge_fts USING fts5(
        title, content, content='knowledge_items', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER knowledge_items_fts_insert AFTER INSERT ON knowledge_items BEGIN
        INSERT INTO knowledge_fts(rowid, title, content) VALUES (new.id, new.title, new.content);
    END""",
    """CREATE TRIGGER knowledge_items_fts_delete AFTER DELETE ON knowledge_items BEGIN
        INSERT INTO knowledge_fts(knowledge_fts, rowid, title, content)
        VALUES ('delete', old.id, old.title, old.content);
    END""",
    """CREATE TRIGGER knowledge_items_fts_update AFTER UPDATE OF title, content ON knowledge_items BEGIN
        INSERT INTO knowledge_fts(knowledge_fts, rowid, title, content)
        VALUES ('delete', old.id, old.title, old.content);
        INSERT INTO knowledge_fts(rowid, title, content) VALUES (new.id, new.title, new.content);
    END""",
    "INSERT INTO knowledge_fts(knowledge_fts) VALUES ('rebuild')",
]


def _enable_pgvector(bind: sa.engine.Connection) -> bool:
    """Create the ``vector`` extension when the server has it; False (and no change) otherwise."""
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
    if not available:
        log.info("pgvector is not installed on this server: embeddings use bytea + an in-process index")
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:  # e.g. not allowed to create extensions
        log.warning("could not create the vector extension (%s): using bytea + an in-process index", exc)
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name

    op.add_column("knowledge_items", sa.Column("updated_by", sa.String(255)))
    op.add_column("knowledge_items", sa.Column("content_hash", sa.String(64)))
    op.create_index("idx_knowledge_content_hash", "knowledge_items", ["content_hash"])

    op.create_table(
        "knowledge_item_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "item_id",
            sa.Integer,
            sa.ForeignKey("knowledge_items.id", ondelete="CASCADE", name="fk_knowledge_item_versions_item_id"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("tags", TEXT_ARRAY),
        sa.Column("metadata", JSON, server_default="{}"),
        sa.Column("changed_by", sa.String(255)),
        sa.Column("valid_from", TS),
        sa.Column("valid_to", TS, server_default=NOW),
        sa.UniqueConstraint("item_id", "version", name="uq_knowledge_item_versions_item_version"),
    )

    use_pgvector = dialect == "postgresql" and _enable_pgvector(bind)
    if dialect == "postgresql":
        op.execute("CREATE SEQUENCE knowledge_embedding_rev_seq")
        rev_default: sa.TextClause | None = sa.text("nextval('knowledge_embedding_rev_seq')")
    else:
        rev_default = None
    op.create_table(
        "knowledge_embeddings",
        sa.Column(
            "item_id",
            sa.Integer,
            sa.ForeignKey("knowledge_items.id", ondelete="CASCADE", name="fk_knowledge_embeddings_item_id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("rev", sa.BigInteger, nullable=False, server_default=rev_default),
        sa.Column("updated_at", TS, server_default=NOW),
    )
    op.create_index("ix_knowledge_embeddings_rev", "knowledge_embeddings", ["rev"])

    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE knowledge_items ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
            "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('english', coalesce(content, '')), 'B')) STORED"
        )
        op.execute("CREATE INDEX idx_knowledge_search_vector ON knowledge_items USING GIN (search_vector)")
        if use_pgvector:
            op.execute(
                f"ALTER TABLE knowledge_embeddings ALTER COLUMN embedding TYPE vector({EMBEDDING_DIMENSION}) USING NULL"
            )
            op.execute(
                "CREATE INDEX idx_knowledge_embeddings_hnsw ON knowledge_embeddings "
                "USING hnsw (embedding vector_cosine_ops)"
            )
    else:
        for statement in SQLITE_FTS:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS idx_knowledge_search_vector")
        op.execute("ALTER TABLE knowledge_items DROP COLUMN IF EXISTS search_vector")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS knowledge_items_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
    op.drop_index("ix_knowledge_embeddings_rev", table_name="knowledge_embeddings")
    op.drop_table("knowledge_embeddings")
    if bind.dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS knowledge_embedding_rev_seq")
    op.drop_table("knowledge_item_versions")
    op.drop_index("idx_knowledge_content_hash", table_name="knowledge_items")
    with op.batch_alter_table("knowledge_items") as batch:
        batch.drop_column("content_hash")
        batch.drop_column("updated_by")
