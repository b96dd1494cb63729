"""Schema for the agent runtime: memory, traces, leases and idempotency for tasks.

Adds the queue columns to ``tasks`` (priority rank, context, session, attempts, lease,
idempotency key), ``agents.config_version``, the ``agent_messages`` / ``agent_notes``
memory tables and ``trace_spans``; then seeds the starter agents of the template catalogue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")

# Frozen copy of the starter agents at the time of this migration (the live catalogue in
# agentlightning.agents.templates may evolve; a migration must not).
STARTER_AGENTS = [
    (
        "general_assistant",
        "assistant",
        "General-purpose assistant: answers questions, does arithmetic and date maths.",
        {
            "system_prompt": "You are a helpful, precise assistant. Answer concisely. Use tools when they help.",
            "tools": ["calculator", "datetime", "memory"],
            "provider": "auto",
            "temperature": 0.2,
            "max_concurrency": 4,
            "template": "general_assistant",
        },
    ),
    (
        "data_agent",
        "data_agent",
        "Analyses data: runs read-only SQL against configured data sources and Python for statistics.",
        {
            "system_prompt": (
                "You are a data analyst. Use sql_query to read data from the named data source, python to "
                "compute statistics, and report findings with the numbers that support them."
            ),
            "tools": ["sql_query", "python", "calculator"],
            "provider": "auto",
            "temperature": 0.1,
            "max_concurrency": 4,
            "template": "data_agent",
        },
    ),
    (
        "research_agent",
        "research_agent",
        "Answers from the knowledge base and cites the items it used.",
        {
            "system_prompt": (
                "You are a research assistant. Search the knowledge base with knowledge_search, answer from "
                "what you find, and cite item ids like [#12]. Say so when the knowledge base has no answer."
            ),
            "tools": ["knowledge_search", "memory"],
            "provider": "auto",
            "temperature": 0.2,
            "max_concurrency": 4,
            "template": "research_agent",
        },
    ),
    (
        "math_agent",
        "math_agent",
        "Solves maths problems step by step, checking arithmetic with the calculator and Python.",
        {
            "system_prompt": (
                "You are a careful mathematician. Work step by step, check every computation with the "
                "calculator or python tool, and end with 'Answer: <result>'."
            ),
            "tools": ["calculator", "python"],
            "provider": "auto",
            "temperature": 0.0,
            "max_concurrency": 4,
            "template": "math_agent",
        },
    ),
]


def upgrade() -> None:
    """Add the queue columns, memory and trace tables; seed the starter agents."""
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("config_version", sa.Integer, nullable=False, server_default="1"))

    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("priority_rank", sa.SmallInteger, nullable=False, server_default="1"))
        batch.add_column(sa.Column("context", JSON, server_default="{}"))
        batch.add_column(sa.Column("session_id", sa.String(128)))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"))
        batch.add_column(sa.Column("lease_owner", sa.String(255)))
        batch.add_column(sa.Column("lease_token", sa.String(64)))
        batch.add_column(sa.Column("lease_expires_at", TS))
        batch.add_column(sa.Column("idempotency_key", sa.String(255)))
        batch.add_column(sa.Column("request_hash", sa.String(64)))
        batch.add_column(sa.Column("created_by", sa.String(255)))
        batch.create_unique_constraint("uq_tasks_idempotency_key", ["idempotency_key"])
    op.create_index("idx_tasks_queue", "tasks", ["status", "priority_rank", "id"])
    op.create_index("idx_tasks_lease", "tasks", ["status", "lease_expires_at"])

    op.create_table(
        "agent_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("task_id", sa.Integer),
        sa.Column("created_at", TS, server_default=NOW),
    )
    op.create_index("idx_agent_messages_session", "agent_messages", ["agent_id", "session_id", "id"])

    op.create_table(
        "agent_notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(255)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("task_id", sa.Integer),
        sa.Column("created_at", TS, server_default=NOW),
        sa.Column("updated_at", TS, server_default=NOW),
    )
    op.create_index("idx_agent_notes_agent", "agent_notes", ["agent_id", "id"])

    op.create_table(
        "trace_spans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("span_id", sa.String(32), nullable=False, unique=True),
        sa.Column("parent_span_id", sa.String(32)),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE")),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="SET NULL")),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="ok"),
        sa.Column("input", JSON),
        sa.Column("output", JSON),
        sa.Column("error", sa.Text),
        sa.Column("model", sa.String(255)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("attributes", JSON, server_default="{}"),
        sa.Column("started_at", TS, server_default=NOW),
        sa.Column("ended_at", TS),
    )
    op.create_index("idx_trace_spans_task", "trace_spans", ["task_id"])
    op.create_index("idx_trace_spans_agent_time", "trace_spans", ["agent_id", "started_at"])
    op.create_index("idx_trace_spans_trace", "trace_spans", ["trace_id"])

    agents = sa.table(
        "agents",
        sa.column("name", sa.String),
        sa.column("type", sa.String),
        sa.column("description", sa.Text),
        sa.column("config", JSON),
        sa.column("status", sa.String),
    )
    op.bulk_insert(
        agents,
        [
            {"name": name, "type": type_, "description": desc, "config": config, "status": "active"}
            for name, type_, desc, config in STARTER_AGENTS
        ],
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` added (the seeded agents are removed by name)."""
    names = ", ".join(f"'{name}'" for name, *_ in STARTER_AGENTS)
    op.execute(f"DELETE FROM agents WHERE name IN ({names})")
    op.drop_table("trace_spans")
    op.drop_table("agent_notes")
    op.drop_table("agent_messages")
    op.drop_index("idx_tasks_lease", table_name="tasks")
    op.drop_index("idx_tasks_queue", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint("uq_tasks_idempotency_key", type_="unique")
        for column in (
            "created_by",
            "request_hash",
            "idempotency_key",
            "lease_expires_at",
            "lease_token",
            "lease_owner",
            "max_attempts",
            "attempts",
            "session_id",
            "context",
            "priority_rank",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("config_version")
