"""SQLite's claim stays cheap as the queue and the history grow: its running-task count goes through
the partial index ``idx_tasks_agent_active`` and is taken once per agent, not once per pending task,
and the backlog is read in the claim's order, never sorted."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import sqlite

from agentlightning.agents.queue_sql import sqlite_next_task
from agentlightning.core.context import AppContext


@pytest.fixture
def backend() -> str:
    """SQLite only: the statement is SQLite's (PostgreSQL claims with its own, in ``queue_pg``)."""
    return "sqlite"


async def test_the_claim_counts_running_tasks_once_per_agent_through_the_partial_index(ctx: AppContext) -> None:
    statement = sqlite_next_task().element.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    async with ctx.db.engine.connect() as conn:
        plan = [str(row[-1]) for row in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}")).all()]
    # Before: "SEARCH ... USING INDEX idx_tasks_agent_id (agent_id=?)" (every task the agent ever
    # ran), in a subquery correlated with each pending candidate.
    assert any("idx_tasks_agent_active (agent_id=? AND status=?)" in step for step in plan), plan
    assert any(step.startswith("LIST SUBQUERY") for step in plan), plan  # the open agents, listed once
    # The pending tasks are read in the claim's order (priority descending, then id): before
    # migration 0021 SQLite sorted the whole backlog again on each claim ("USE TEMP B-TREE").
    assert any("USING INDEX idx_tasks_queue (status=?)" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
