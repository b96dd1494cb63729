"""The rewards the online bandit has handled: ``bandit_observations`` (owned by
``rl.optimisers.bandit_service``), and an index on ``rewards.created_at`` for its sweep.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One row per handled reward; the rollout-level rewards stored before count as handled
    (``learned`` NULL: the listener of the time took them in or passed them over)."""
    op.create_table(
        "bandit_observations",
        sa.Column(
            "reward_id",
            sa.Integer,
            sa.ForeignKey("rewards.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("learned", sa.Boolean, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("idx_rewards_created", "rewards", ["created_at"])
    op.execute(
        "INSERT INTO bandit_observations (reward_id, learned, created_at) "
        "SELECT id, NULL, CURRENT_TIMESTAMP FROM rewards WHERE span_id IS NULL"
    )


def downgrade() -> None:
    """Drop the table and the index."""
    op.drop_index("idx_rewards_created", table_name="rewards")
    op.drop_table("bandit_observations")
