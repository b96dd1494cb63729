"""Durable workflows: definitions (versioned), runs and the state of every step of a run.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

#: The vocabulary as of this revision (a migration never imports code that may change later).
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")
STEP_KINDS = ("agent", "tool", "condition", "workflow")
VISIBILITIES = ("private", "shared")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("visibility", sa.String(20), nullable=False, server_default="private"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.String(255)),
        sa.Column("created_at", TS),
        sa.Column("updated_at", TS),
        sa.UniqueConstraint("name", name="uq_workflows_name"),
        sa.CheckConstraint(_in("visibility", VISIBILITIES), name="ck_workflows_visibility"),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "workflow_id",
            sa.Integer(),
            sa.ForeignKey("workflows.id", ondelete="CASCADE", name="fk_workflow_versions_workflow_id_workflows"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("created_at", TS),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_version"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "workflow_id",
            sa.Integer(),
            sa.ForeignKey("workflows.id", ondelete="CASCADE", name="fk_workflow_runs_workflow_id_workflows"),
            nullable=False,
        ),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey(
                "workflow_versions.id", ondelete="CASCADE", name="fk_workflow_runs_version_id_workflow_versions"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("input", JSON, server_default="{}"),
        sa.Column("output", JSON),
        sa.Column("error", sa.Text()),
        sa.Column("owner", sa.String(255)),
        sa.Column("parent_run_id", sa.Integer()),
        sa.Column("parent_step_id", sa.Integer()),
        sa.Column("depth", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", TS),
        sa.Column("wake_at", TS),
        sa.Column("rollout_id", sa.String(64)),
        sa.Column("created_at", TS),
        sa.Column("started_at", TS),
        sa.Column("completed_at", TS),
        sa.UniqueConstraint("idempotency_key", name="uq_workflow_runs_idempotency_key"),
        sa.CheckConstraint(_in("status", RUN_STATUSES), name="ck_workflow_runs_status"),
    )
    op.create_index("idx_workflow_runs_workflow", "workflow_runs", ["workflow_id", "id"])
    op.create_index("idx_workflow_runs_active", "workflow_runs", ["status", "lease_expires_at"])
    op.create_index("idx_workflow_runs_owner", "workflow_runs", ["owner"])
    op.create_index("idx_workflow_runs_parent", "workflow_runs", ["parent_run_id"])
    op.create_table(
        "workflow_steps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("workflow_runs.id", ondelete="CASCADE", name="fk_workflow_steps_run_id_workflow_runs"),
            nullable=False,
        ),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False, server_default="-1"),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("task_id", sa.Integer()),
        sa.Column("child_run_id", sa.Integer()),
        sa.Column("output", JSON),
        sa.Column("error", sa.Text()),
        sa.Column("not_before", TS),
        sa.Column("deadline_at", TS),
        sa.Column("started_at", TS),
        sa.Column("completed_at", TS),
        sa.UniqueConstraint("run_id", "step_id", "item", name="uq_workflow_steps_run_step_item"),
        sa.CheckConstraint(_in("status", STEP_STATUSES), name="ck_workflow_steps_status"),
        sa.CheckConstraint(_in("kind", STEP_KINDS), name="ck_workflow_steps_kind"),
    )
    op.create_index("idx_workflow_steps_task", "workflow_steps", ["task_id"])


def downgrade() -> None:
    op.drop_index("idx_workflow_steps_task", table_name="workflow_steps")
    op.drop_table("workflow_steps")
    for name in ("idx_workflow_runs_parent", "idx_workflow_runs_owner", "idx_workflow_runs_active"):
        op.drop_index(name, table_name="workflow_runs")
    op.drop_index("idx_workflow_runs_workflow", table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
