"""At most one running Auto-RL optimisation per agent: a unique partial index on ``auto_rl_triggers``.

``TriggerService.trigger`` used to check "nothing running for this agent" and then insert, so two
concurrent triggers (two ``POST /api/v2/rl/auto-trigger`` calls, or one and the monitor) could both
pass the check and start two runs. With this index the database refuses the second ``running``
row of an agent, and the service answers 409 ``AUTO_RL_RUNNING``.

Rows left from before (an agent with several ``running`` triggers) keep their newest one running;
the older ones end as ``stopped`` so the index can be built.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

RUNNING = sa.text("outcome = 'running'")


def upgrade() -> None:
    """End duplicate running triggers (all but each agent's newest), then index the running ones."""
    op.execute(
        sa.text(
            "UPDATE auto_rl_triggers SET outcome = 'stopped', finished_at = CURRENT_TIMESTAMP "
            "WHERE outcome = 'running' AND agent_id IS NOT NULL AND id < ("
            "SELECT MAX(t.id) FROM auto_rl_triggers t WHERE t.agent_id = auto_rl_triggers.agent_id "
            "AND t.outcome = 'running')"
        )
    )
    op.create_index(
        "uq_auto_rl_triggers_running",
        "auto_rl_triggers",
        ["agent_id"],
        unique=True,
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    """Drop the index (the ended duplicates stay ended)."""
    op.drop_index("uq_auto_rl_triggers_running", table_name="auto_rl_triggers")
