"""Schema for the RL orchestrator: lifecycle state, metric history, user environments.

Adds to ``rl_experiments`` the experiment kind, backend, error, creator, ``updated_at``, the stop
request and the lease (owner + heartbeat + attempts) used to recover runs after a restart;
creates ``rl_metric_points`` (the streamed history) and ``rl_environments`` (custom Gymnasium
environments registered by entry point). Checkpoints stay in the spec's ``checkpoints`` column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_EXPERIMENT_COLUMNS = (
    "kind",
    "backend",
    "error",
    "created_by",
    "updated_at",
    "stop_requested_at",
    "lease_owner",
    "heartbeat_at",
    "attempts",
)


def upgrade() -> None:
    """Add the lifecycle columns and the metric-history and environment tables."""
    with op.batch_alter_table("rl_experiments") as batch:
        batch.add_column(sa.Column("kind", sa.String(30), nullable=False, server_default="classic"))
        batch.add_column(sa.Column("backend", sa.String(20)))
        batch.add_column(sa.Column("error", sa.Text))
        batch.add_column(sa.Column("created_by", sa.String(255)))
        batch.add_column(sa.Column("updated_at", TS, server_default=NOW))
        batch.add_column(sa.Column("stop_requested_at", TS))
        batch.add_column(sa.Column("lease_owner", sa.String(255)))
        batch.add_column(sa.Column("heartbeat_at", TS))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    # The queue is claimed oldest first among ``queued``; recovery scans ``running`` by heartbeat.
    op.create_index("idx_rl_experiments_queue", "rl_experiments", ["status", "id"])
    op.create_index("idx_rl_experiments_lease", "rl_experiments", ["status", "heartbeat_at"])

    op.create_table(
        "rl_metric_points",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("rl_experiments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("timesteps", sa.BigInteger, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TS, server_default=NOW),
    )
    op.create_index("idx_rl_metric_points_experiment", "rl_metric_points", ["experiment_id", "id"])

    op.create_table(
        "rl_environments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("env_id", sa.String(255), nullable=False, unique=True),
        sa.Column("entry_point", sa.String(500), nullable=False),
        sa.Column("kwargs", JSON, server_default="{}"),
        sa.Column("max_episode_steps", sa.Integer),
        sa.Column("description", sa.Text),
        sa.Column("created_by", sa.String(255)),
        sa.Column("created_at", TS, server_default=NOW),
    )


def downgrade() -> None:
    """Reverse of :func:`upgrade`."""
    op.drop_table("rl_environments")
    op.drop_index("idx_rl_metric_points_experiment", table_name="rl_metric_points")
    op.drop_table("rl_metric_points")
    op.drop_index("idx_rl_experiments_lease", table_name="rl_experiments")
    op.drop_index("idx_rl_experiments_queue", table_name="rl_experiments")
    with op.batch_alter_table("rl_experiments") as batch:
        for column in reversed(_EXPERIMENT_COLUMNS):
            batch.drop_column(column)
