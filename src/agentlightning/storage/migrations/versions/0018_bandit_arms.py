"""The online bandit's posteriors: ``bandit_arms`` (owned by ``rl.optimisers.bandit_service``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One row per (agent, task type, variant); deleting the agent deletes its arms."""
    op.create_table(
        "bandit_arms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task_type", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("alpha", sa.Float, nullable=False, server_default="1"),
        sa.Column("beta", sa.Float, nullable=False, server_default="1"),
        sa.Column("pulls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("observations", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reward_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("reward_sq_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP")),
        sa.UniqueConstraint("agent_id", "task_type", "variant", name="uq_bandit_arms_arm"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("bandit_arms")
