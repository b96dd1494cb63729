"""The built-in verifiable suite: ``verifiable_tasks`` (owned by ``agentlightning.rl.suite``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the table and its lookup index (suite, split, task type)."""
    op.create_table(
        "verifiable_tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("suite", sa.String(64), nullable=False, server_default="builtin"),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("verifier", JSON, nullable=False),
        sa.Column("context", JSON, nullable=False),
        sa.Column("agent_type", sa.String(50)),
        sa.Column("reference", sa.Text),
        sa.Column("created_at", TS, server_default=sa.text("CURRENT_TIMESTAMP")),
        sa.CheckConstraint("split IN ('train', 'heldout')", name=op.f("ck_verifiable_tasks_split")),
    )
    op.create_index("idx_verifiable_tasks_suite_split", "verifiable_tasks", ["suite", "split", "task_type"])


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("idx_verifiable_tasks_suite_split", table_name="verifiable_tasks")
    op.drop_table("verifiable_tasks")
