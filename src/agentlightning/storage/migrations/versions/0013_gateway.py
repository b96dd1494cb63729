"""The OpenAI-compatible gateway's per-API-key policy: ``gateway_key_policies``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "gateway_key_policies",
        sa.Column("api_key_id", sa.Integer(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("allowed_models", json_type, nullable=True),
        sa.Column("rate_limit", sa.String(64), nullable=True),
        sa.Column("token_budget", sa.Integer(), nullable=True),
        sa.Column("budget_window", sa.String(16), nullable=True),
        sa.Column("max_request_bytes", sa.Integer(), nullable=True),
        sa.Column("upstream_timeout_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("gateway_key_policies")
