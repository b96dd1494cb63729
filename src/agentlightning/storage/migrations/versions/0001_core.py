"""Core schema: the spec's tables (agents, knowledge_items, tasks, rl_experiments) plus users,
credentials and the system configuration.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TEXT_ARRAY = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(255), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(50), nullable=False, server_default="user"),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, server_default=NOW),
        sa.Column("updated_at", TS, server_default=NOW),
        sa.Column("last_login_at", TS),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, server_default=NOW),
        sa.Column("expires_at", TS),
        sa.Column("last_used_at", TS),
        sa.Column("revoked_at", TS),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("issued_at", TS, server_default=NOW),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column("revoked_at", TS),
    )
    op.create_index("idx_refresh_tokens_session", "refresh_tokens", ["session_id"])
    op.create_table(
        "revoked_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    op.create_table(
        "system_config",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("updated_at", TS, server_default=NOW),
        sa.Column("updated_by", sa.String(255)),
    )

    # --- The specification's tables, column for column -------------------------------------
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("config", JSON, server_default="{}"),
        sa.Column("status", sa.String(50), server_default="active"),
        sa.Column("created_at", TS, server_default=NOW),
        sa.Column("updated_at", TS, server_default=NOW),
        sa.Column("performance_metrics", JSON, server_default="{}"),
        sa.Column("last_activity", TS),
    )
    op.create_index("idx_agents_type", "agents", ["type"])
    op.create_index("idx_agents_status", "agents", ["status"])
    op.create_index("idx_agents_last_activity", "agents", ["last_activity"])

    op.create_table(
        "knowledge_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("tags", TEXT_ARRAY),
        sa.Column("metadata", JSON, server_default="{}"),
        sa.Column("created_at", TS, server_default=NOW),
        sa.Column("updated_at", TS, server_default=NOW),
        sa.Column("created_by", sa.String(255)),
        sa.Column("version", sa.Integer, server_default="1"),
    )
    op.create_index("idx_knowledge_category", "knowledge_items", ["category"])
    if dialect == "postgresql":
        op.create_index("idx_knowledge_tags", "knowledge_items", ["tags"], postgresql_using="gin")
        op.execute("CREATE INDEX idx_knowledge_content ON knowledge_items USING GIN (to_tsvector('english', content))")

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_description", sa.Text, nullable=False),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(50), server_default="pending"),
        sa.Column("priority", sa.String(20), server_default="medium"),
        sa.Column("result", JSON),
        sa.Column("created_at", TS, server_default=NOW),
        sa.Column("started_at", TS),
        sa.Column("completed_at", TS),
        sa.Column("execution_time_ms", sa.Integer),
        sa.Column("error_message", sa.Text),
    )
    op.create_index("idx_tasks_status", "tasks", ["status"])
    op.create_index("idx_tasks_agent_id", "tasks", ["agent_id"])
    op.create_index("idx_tasks_created_at", "tasks", ["created_at"])

    op.create_table(
        "rl_experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("algorithm", sa.String(50), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("status", sa.String(50), server_default="created"),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("start_time", TS),
        sa.Column("end_time", TS),
        sa.Column("metrics", JSON, server_default="{}"),
        sa.Column("checkpoints", JSON, server_default="[]"),
        sa.Column("created_at", TS, server_default=NOW),
    )
    op.create_index("idx_rl_experiments_status", "rl_experiments", ["status"])
    op.create_index("idx_rl_experiments_agent_id", "rl_experiments", ["agent_id"])


def downgrade() -> None:
    for table in (
        "rl_experiments",
        "tasks",
        "knowledge_items",
        "agents",
        "system_config",
        "revoked_tokens",
        "refresh_tokens",
        "api_keys",
        "users",
    ):
        op.drop_table(table)
