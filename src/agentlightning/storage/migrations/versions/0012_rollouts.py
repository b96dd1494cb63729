"""Rollouts, rewards, and the rollout of each trace span.

``rollouts`` holds one row per run of an agent (a task run, an SDK or gateway run, a workflow
run), ``rewards`` every reward given to a rollout or to one of its spans, and ``trace_spans``
gains ``rollout_id``.  Statuses and sources are held to the vocabulary by CHECK constraints, as
in ``0007``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: The vocabulary as of this revision (a migration never imports code that may change later).
ROLLOUT_SOURCES = ("task", "sdk", "gateway", "workflow")
ROLLOUT_STATUSES = ("running", "completed", "failed")
REWARD_SOURCES = ("verifier", "feedback", "sdk", "gateway", "system")


def _condition(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    json_type = postgresql.JSONB() if postgres else sa.JSON()
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("tasks.id", ondelete="CASCADE")),
        sa.Column("parent_id", sa.String(64)),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="running"),
        sa.Column("owner", sa.String(255)),
        sa.Column("input", json_type),
        sa.Column("output", json_type),
        sa.Column("reward", sa.Float()),
        sa.Column("metadata", json_type, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("task_id", name=op.f("uq_rollouts_task_id")),
        sa.CheckConstraint(_condition("status", ROLLOUT_STATUSES), name=op.f("ck_rollouts_status")),
        sa.CheckConstraint(_condition("source", ROLLOUT_SOURCES), name=op.f("ck_rollouts_source")),
    )
    op.create_index("idx_rollouts_agent_created", "rollouts", ["agent_id", "created_at"])
    op.create_index("idx_rollouts_source", "rollouts", ["source"])
    op.create_index("idx_rollouts_reward", "rollouts", ["reward"])
    op.create_index("idx_rollouts_owner_created", "rollouts", ["owner", "created_at"])
    op.create_index("idx_rollouts_parent", "rollouts", ["parent_id"])
    op.create_table(
        "rewards",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rollout_id", sa.String(64), sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("span_id", sa.String(32)),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("comment", sa.Text()),
        sa.Column("details", json_type, server_default="{}"),
        sa.Column("created_by", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_condition("source", REWARD_SOURCES), name=op.f("ck_rewards_source")),
    )
    op.create_index("idx_rewards_rollout", "rewards", ["rollout_id"])
    op.add_column("trace_spans", sa.Column("rollout_id", sa.String(64)))
    op.create_index("idx_trace_spans_rollout", "trace_spans", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("idx_trace_spans_rollout", table_name="trace_spans")
    with op.batch_alter_table("trace_spans") as batch:
        batch.drop_column("rollout_id")
    op.drop_index("idx_rewards_rollout", table_name="rewards")
    op.drop_table("rewards")
    for name in (
        "idx_rollouts_parent",
        "idx_rollouts_owner_created",
        "idx_rollouts_reward",
        "idx_rollouts_source",
        "idx_rollouts_agent_created",
    ):
        op.drop_index(name, table_name="rollouts")
    op.drop_table("rollouts")
