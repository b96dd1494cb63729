"""Auto-RL: per-agent policies, triggers, promotion history (for rollback) and the monitor's lease.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "auto_rl_policies",
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=True),
        sa.Column("window", sa.Integer, nullable=True),
        sa.Column("min_samples", sa.Integer, nullable=True),
        sa.Column("success_threshold", sa.Float, nullable=True),
        sa.Column("cooldown_minutes", sa.Integer, nullable=True),
        sa.Column("algorithm", sa.String(50), nullable=True),
        sa.Column("max_evaluations", sa.Integer, nullable=True),
        sa.Column("max_wall_seconds", sa.Integer, nullable=True),
        sa.Column("alpha", sa.Float, nullable=True),
        sa.Column("options", JSON, nullable=False, server_default="{}"),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
    )
    op.create_table(
        "auto_rl_triggers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("rl_experiments.id", ondelete="SET NULL"), nullable=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("algorithm", sa.String(50), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False, server_default="running"),
        sa.Column("n", sa.Integer, nullable=False, server_default="0"),
        sa.Column("success_rate", sa.Float, nullable=True),
        sa.Column("mean_reward", sa.Float, nullable=True),
        sa.Column("triggered_by", sa.String(255), nullable=True),
        sa.Column("decision", JSON, nullable=False, server_default="{}"),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("idx_auto_rl_triggers_agent", "auto_rl_triggers", ["agent_id", "created_at"])
    op.create_table(
        "auto_rl_promotions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("rl_experiments.id", ondelete="SET NULL"), nullable=True),
        sa.Column("trigger_id", sa.Integer, sa.ForeignKey("auto_rl_triggers.id", ondelete="SET NULL"), nullable=True),
        sa.Column("before", JSON, nullable=False),
        sa.Column("after", JSON, nullable=False),
        sa.Column("version_before", sa.Integer, nullable=False),
        sa.Column("version_after", sa.Integer, nullable=False),
        sa.Column("incumbent_score", sa.Float, nullable=True),
        sa.Column("candidate_score", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("n_heldout", sa.Integer, nullable=True),
        sa.Column("gain_pp", sa.Float, nullable=True),
        sa.Column("rolled_back_at", TS, nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
    )
    op.create_index("idx_auto_rl_promotions_agent", "auto_rl_promotions", ["agent_id", "id"])
    op.create_table(
        "auto_rl_leases",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("auto_rl_leases")
    op.drop_index("idx_auto_rl_promotions_agent", table_name="auto_rl_promotions")
    op.drop_table("auto_rl_promotions")
    op.drop_index("idx_auto_rl_triggers_agent", table_name="auto_rl_triggers")
    op.drop_table("auto_rl_triggers")
    op.drop_table("auto_rl_policies")
