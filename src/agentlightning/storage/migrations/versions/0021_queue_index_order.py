"""On SQLite, ``idx_tasks_queue`` in the claim's order: ``(status, priority_rank DESC, id)``.

SQLite's claim takes the first pending task, by priority highest first, then oldest first, of an
agent below its limit.  With the index ascending on both, SQLite read the pending tasks in index
order but sorted every priority group again by id (a temporary B-tree over the whole backlog, on
each claim: about 1.4 ms of CPU with 2,000 queued); in the claim's order it stops at the first
task it may run (0.2 ms).

PostgreSQL keeps the index as it was: its claim picks per agent, and there an index in this
order made the planner walk past other agents' higher-priority tasks.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rebuild the index with ``priority_rank`` descending (SQLite)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("idx_tasks_queue", table_name="tasks")
    op.create_index("idx_tasks_queue", "tasks", ["status", sa.text("priority_rank DESC"), "id"])


def downgrade() -> None:
    """Back to ``(status, priority_rank, id)``."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("idx_tasks_queue", table_name="tasks")
    op.create_index("idx_tasks_queue", "tasks", ["status", "priority_rank", "id"])
