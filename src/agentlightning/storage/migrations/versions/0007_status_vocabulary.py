"""CHECK constraints holding statuses and priorities to the one vocabulary (``agentlightning.vocabulary``).

``agents.status``, ``tasks.status``, ``tasks.priority`` and ``rl_experiments.status`` accept only
the values the code defines, so a typo in any writer fails loudly instead of storing a state no
reader knows. Existing rows are checked first: a value outside the vocabulary stops the upgrade
with the table, column and values to fix (nothing is rewritten silently). SQLite cannot add a
constraint to a table in place, so there the table is rebuilt (``batch_alter_table``), keeping its
partial indexes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The vocabulary as of this revision (a migration never imports code that may change later).
VOCABULARY: dict[tuple[str, str], tuple[str, ...]] = {
    ("agents", "status"): ("active", "paused", "disabled"),
    ("tasks", "status"): ("pending", "running", "completed", "failed", "cancelled"),
    ("tasks", "priority"): ("low", "medium", "high", "critical"),
    ("rl_experiments", "status"): ("created", "queued", "running", "completed", "stopped", "failed"),
}

#: Partial indexes SQLite's table rebuild would recreate without their ``WHERE`` clause.
_PARTIAL_INDEXES = {"tasks": [("idx_tasks_agent_active", ["agent_id", "status"], "status IN ('pending', 'running')")]}


def _condition(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check_existing_rows() -> None:
    bind = op.get_bind()
    problems = []
    for (table, column), values in VOCABULARY.items():
        rows = bind.execute(
            sa.text(
                f"SELECT {column}, count(*) FROM {table} "
                f"WHERE {column} IS NOT NULL AND NOT ({_condition(column, values)}) GROUP BY {column}"
            )
        ).all()
        if rows:
            found = ", ".join(f"{value!r} ({count} row(s))" for value, count in rows)
            problems.append(f"{table}.{column} holds {found}; allowed: {', '.join(values)}")
    if problems:
        raise RuntimeError(
            "Cannot add the status CHECK constraints: fix these rows first, then migrate again: " + "; ".join(problems)
        )


def upgrade() -> None:
    _check_existing_rows()
    sqlite = op.get_bind().dialect.name == "sqlite"
    tables: dict[str, list[str]] = {}
    for table, column in VOCABULARY:
        tables.setdefault(table, []).append(column)
    for table, columns in tables.items():
        if sqlite:
            for name, _, _ in _PARTIAL_INDEXES.get(table, []):
                op.drop_index(name, table_name=table)
            with op.batch_alter_table(table, recreate="always") as batch:
                for column in columns:
                    batch.create_check_constraint(
                        op.f(f"ck_{table}_{column}"), _condition(column, VOCABULARY[(table, column)])
                    )
            for name, cols, where in _PARTIAL_INDEXES.get(table, []):
                op.create_index(name, table, cols, sqlite_where=sa.text(where))
        else:
            for column in columns:
                op.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), table, _condition(column, VOCABULARY[(table, column)])
                )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    tables: dict[str, list[str]] = {}
    for table, column in VOCABULARY:
        tables.setdefault(table, []).append(column)
    for table, columns in tables.items():
        if sqlite:
            for name, _, _ in _PARTIAL_INDEXES.get(table, []):
                op.drop_index(name, table_name=table)
            with op.batch_alter_table(table, recreate="always") as batch:
                for column in columns:
                    batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
            for name, cols, where in _PARTIAL_INDEXES.get(table, []):
                op.create_index(name, table, cols, sqlite_where=sa.text(where))
        else:
            for column in columns:
                op.drop_constraint(op.f(f"ck_{table}_{column}"), table, type_="check")
