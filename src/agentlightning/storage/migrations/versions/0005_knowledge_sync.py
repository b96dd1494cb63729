"""Knowledge base follow-up: a vector deletion log for in-process indexes, and item sources.

- ``knowledge_embedding_tombstones``: one row per deleted embedding, written by a trigger on
  ``knowledge_embeddings`` (so item deletions cascading from any code path are logged too). Its
  ``rev`` comes from the same counter as the embeddings' ``rev``, so an in-process vector index
  that catches up "everything above my watermark" sees deletions in order with upserts. Old rows
  are pruned by the knowledge index service (the newest row is always kept: on SQLite it carries
  the counter's high-water mark).
- ``knowledge_items.source``: where an imported item came from (the file's absolute path), so
  re-importing a changed file replaces that file's previous chunks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")

PG_TRIGGER = [
    """CREATE FUNCTION knowledge_embedding_tombstones_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO knowledge_embedding_tombstones (rev, item_id)
        SELECT nextval('knowledge_embedding_rev_seq'), item_id FROM gone;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER knowledge_embeddings_tombstone AFTER DELETE ON knowledge_embeddings
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION knowledge_embedding_tombstones_log()""",
]

# SQLite has one writer at a time: the next rev is the highest one issued so far plus one.
SQLITE_TRIGGER = """CREATE TRIGGER knowledge_embeddings_tombstone AFTER DELETE ON knowledge_embeddings BEGIN
    INSERT INTO knowledge_embedding_tombstones (rev, item_id, deleted_at) VALUES (
        max(coalesce((SELECT max(rev) FROM knowledge_embeddings), 0),
            coalesce((SELECT max(rev) FROM knowledge_embedding_tombstones), 0), old.rev) + 1,
        old.item_id, CURRENT_TIMESTAMP);
END"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "knowledge_embedding_tombstones",
        sa.Column("rev", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("deleted_at", TS, nullable=False, server_default=NOW),
    )
    if dialect == "postgresql":
        for statement in PG_TRIGGER:
            op.execute(statement)
    else:
        op.execute(SQLITE_TRIGGER)
    op.add_column("knowledge_items", sa.Column("source", sa.String(1000)))
    # Items imported before this revision name their file in metadata (as it was typed).
    if dialect == "postgresql":
        op.execute("UPDATE knowledge_items SET source = left(metadata->>'source', 1000) WHERE metadata ? 'source'")
    else:
        op.execute(
            "UPDATE knowledge_items SET source = substr(json_extract(metadata, '$.source'), 1, 1000) "
            "WHERE json_extract(metadata, '$.source') IS NOT NULL"
        )
    op.create_index("idx_knowledge_source", "knowledge_items", ["source"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("idx_knowledge_source", table_name="knowledge_items")
    with op.batch_alter_table("knowledge_items") as batch:
        batch.drop_column("source")
    op.execute(
        "DROP TRIGGER IF EXISTS knowledge_embeddings_tombstone"
        + (" ON knowledge_embeddings" if dialect == "postgresql" else "")
    )
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS knowledge_embedding_tombstones_log()")
    op.drop_table("knowledge_embedding_tombstones")
