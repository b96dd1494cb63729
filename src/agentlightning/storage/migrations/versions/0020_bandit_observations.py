"""The rewards the online bandit has handled: ``bandit_observations`` (owned by
``rl.optimisers.bandit_service``), and an index on ``rewards.created_at`` for its sweep.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One row per handled reward.  The rollout-level rewards of the last day (as far back as the
    bandit's sweep looks) count as handled: the listener of the time took them in or passed them
    over (``learned`` NULL)."""
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
    now = datetime.now(timezone.utc)
    if op.get_bind().dialect.name == "sqlite":  # naive UTC text there, as the app stores it
        now = now.replace(tzinfo=None)
    stamp = sa.DateTime(timezone=True)
    rewards = sa.table("rewards", sa.column("id", sa.Integer), sa.column("span_id"), sa.column("created_at", stamp))
    observations = sa.table(
        "bandit_observations", sa.column("reward_id"), sa.column("learned"), sa.column("created_at", stamp)
    )
    recent = sa.select(rewards.c.id, sa.null(), sa.literal(now, stamp)).where(
        rewards.c.span_id.is_(None), rewards.c.created_at >= sa.literal(now - timedelta(days=1), stamp)
    )
    op.execute(observations.insert().from_select(["reward_id", "learned", "created_at"], recent))


def downgrade() -> None:
    """Drop the table and the index."""
    op.drop_index("idx_rewards_created", table_name="rewards")
    op.drop_table("bandit_observations")
