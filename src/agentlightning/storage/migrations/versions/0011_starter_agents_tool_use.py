"""Starter agents that make the local model use its tools.

The seeded ``math_agent`` asked the model to "work step by step"; the embedded model then worked
the arithmetic out in its head (and a 135M model got it wrong).  Its new configuration asks for a
calculator call first and sets ``tool_choice: required`` (the first reply of a run is a tool call);
``general_assistant`` is told to use the calculator and datetime tools rather than guess.  Only
starter agents nobody has edited (``config_version`` 1 and the seeded prompt) are changed; their
``config_version`` moves to 2, so answers cached under the old configuration are not served.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Frozen copies (the live catalogue in agentlightning.agents.templates may evolve; a migration must not).
OLD_PROMPTS = {
    "general_assistant": "You are a helpful, precise assistant. Answer concisely. Use tools when they help.",
    "math_agent": (
        "You are a careful mathematician. Work step by step, check every computation with the "
        "calculator or python tool, and end with 'Answer: <result>'."
    ),
}
NEW_CONFIG: dict[str, dict[str, Any]] = {
    "general_assistant": {
        "system_prompt": (
            "You are a helpful, precise assistant. Answer concisely. For arithmetic call the calculator "
            "tool and for dates the datetime tool instead of working it out yourself; then answer from "
            "the tool's result."
        ),
    },
    "math_agent": {
        "system_prompt": (
            "You are a careful mathematician. Never compute in your head: for each calculation, first "
            "call the calculator tool with the expression (or python for longer programs) and wait for "
            "its result. Once you have the results, reply briefly and end with 'Answer: <result>'."
        ),
        "tool_choice": "required",
    },
}

agents = sa.table(
    "agents",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("config", JSON),
    sa.column("config_version", sa.Integer),
)


def _rewrite(from_version: int, to_version: int, expected: dict[str, str], change: Any) -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(agents.c.id, agents.c.name, agents.c.config).where(
            agents.c.name.in_(list(expected)), agents.c.config_version == from_version
        )
    ).all()
    for row in rows:
        config = copy.deepcopy(dict(row.config or {}))
        if config.get("system_prompt") != expected[row.name]:
            continue  # edited by someone: leave it alone
        config = change(row.name, config)
        bind.execute(sa.update(agents).where(agents.c.id == row.id).values(config=config, config_version=to_version))


def upgrade() -> None:
    """Give the untouched starter agents their tool-using prompts."""
    _rewrite(1, 2, OLD_PROMPTS, lambda name, config: config | NEW_CONFIG[name])


def downgrade() -> None:
    """Restore the seeded prompts of starter agents still as this migration left them."""

    def restore(name: str, config: dict[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in config.items() if k not in NEW_CONFIG[name]}
        return config | {"system_prompt": OLD_PROMPTS[name]}

    _rewrite(2, 1, {name: cfg["system_prompt"] for name, cfg in NEW_CONFIG.items()}, restore)
