"""The event log (outbox) of task and training events: ids for resuming, owners for visibility.

Task events are written in the same transaction as the task's state change and published after
the commit; WebSocket clients resume from the last id they saw.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "task_events",
        sa.Column("id", sa.BigInteger() if postgres else sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("task_id", sa.Integer()),
        sa.Column("agent_id", sa.Integer()),
        sa.Column("owner", sa.String(255)),
        sa.Column("data", postgresql.JSONB() if postgres else sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("idx_task_events_task", "task_events", ["task_id"])
    op.create_index("idx_task_events_created_at", "task_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("idx_task_events_created_at", table_name="task_events")
    op.drop_index("idx_task_events_task", table_name="task_events")
    op.drop_table("task_events")
