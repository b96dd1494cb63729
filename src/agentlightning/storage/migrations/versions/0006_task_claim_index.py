"""A partial index for the claim's per-agent checks (pending and running tasks of an agent).

Claims count each agent's running tasks and look for its pending ones; with ``idx_tasks_agent_id``
alone that reads the agent's whole history, which grows without bound. Only unfinished tasks are
indexed here, so the index stays as small as the live queue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    op.create_index(
        "idx_tasks_agent_active", "tasks", ["agent_id", "status"], postgresql_where=ACTIVE, sqlite_where=ACTIVE
    )


def downgrade() -> None:
    op.drop_index("idx_tasks_agent_active", table_name="tasks")
