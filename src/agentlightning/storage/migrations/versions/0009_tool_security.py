"""Agent memory belongs to a user: ``owner`` on ``agent_messages`` and ``agent_notes``.

A session id is chosen by the client, so it is only unique per user: conversation turns and the
memory tool's notes are now looked up by (agent, owner, session). Existing rows take the owner of
the task that wrote them; rows without one stay owner-less and no user's lookup returns them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BACKFILL = "UPDATE {table} SET owner = (SELECT tasks.created_by FROM tasks WHERE tasks.id = {table}.task_id)"


def upgrade() -> None:
    for table in ("agent_messages", "agent_notes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
        op.execute(sa.text(BACKFILL.format(table=table)))
    op.drop_index("idx_agent_messages_session", table_name="agent_messages")
    op.create_index("idx_agent_messages_owner_session", "agent_messages", ["agent_id", "owner", "session_id", "id"])
    op.drop_index("idx_agent_notes_agent", table_name="agent_notes")
    op.create_index("idx_agent_notes_owner", "agent_notes", ["agent_id", "owner", "id"])


def downgrade() -> None:
    op.drop_index("idx_agent_notes_owner", table_name="agent_notes")
    op.create_index("idx_agent_notes_agent", "agent_notes", ["agent_id", "id"])
    op.drop_index("idx_agent_messages_owner_session", table_name="agent_messages")
    op.create_index("idx_agent_messages_session", "agent_messages", ["agent_id", "session_id", "id"])
    for table in ("agent_messages", "agent_notes"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner")
