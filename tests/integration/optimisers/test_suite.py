"""The built-in verifiable suite on both backends: idempotent install, disjoint splits, its data."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from agentlightning.agents.tools.sql_query import run_read_only
from agentlightning.core.context import AppContext
from agentlightning.knowledge import service as knowledge
from agentlightning.knowledge.schemas import SearchMode
from agentlightning.rl.suite import install_suite, load_suite_tasks
from agentlightning.rl.suite.generators import SQL_SOURCE_NAME, builtin_items
from agentlightning.rl.suite.service import KNOWLEDGE_SOURCE
from agentlightning.storage.models import KnowledgeItem, SuiteTask


async def _count(ctx: AppContext, model: type, *where: object) -> int:
    async with ctx.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_install_is_idempotent(ctx: AppContext) -> None:
    phases: Counter[str] = Counter()
    first = await install_suite(ctx, progress=lambda phase, done, total: phases.update([phase]))
    expected = len(builtin_items())
    assert first.total == expected >= 200
    assert {"knowledge", "database", "tasks"} <= set(phases)
    assert first.created + first.updated + first.unchanged == expected
    docs = await _count(ctx, KnowledgeItem, KnowledgeItem.source == KNOWLEDGE_SOURCE)
    assert docs == 24

    second = await install_suite(ctx)
    assert (second.created, second.updated, second.removed, second.unchanged) == (0, 0, 0, expected)
    assert second.knowledge_items_created == 0
    assert await _count(ctx, SuiteTask, SuiteTask.suite == "builtin") == expected
    assert await _count(ctx, KnowledgeItem, KnowledgeItem.source == KNOWLEDGE_SOURCE) == docs


async def test_splits_are_disjoint_and_cover_every_type(ctx: AppContext) -> None:
    summary = await install_suite(ctx)
    train = await load_suite_tasks(ctx.db, split="train")
    heldout = await load_suite_tasks(ctx.db, split="heldout")
    train_ids, heldout_ids = {t.id for t in train}, {t.id for t in heldout}
    assert not train_ids & heldout_ids
    assert len(train_ids | heldout_ids) == summary.total
    assert not {t.prompt for t in train} & {t.prompt for t in heldout}
    for task_type in summary.by_type:
        assert any(t.task_type == task_type for t in heldout), task_type
        assert any(t.task_type == task_type for t in train), task_type
    assert all(t.verifier.get("type") for t in train)

    sql = await load_suite_tasks(ctx.db, split="train", task_types=["sql"], limit=5)
    assert len(sql) == 5 and {t.task_type for t in sql} == {"sql"}
    maths = await load_suite_tasks(ctx.db, split="heldout", agent_type="math_agent")
    assert maths and {t.task_type for t in maths} == {"arithmetic"}


async def test_sql_and_knowledge_tasks_are_answerable(ctx: AppContext) -> None:
    await install_suite(ctx)
    source = ctx.settings.sql_data_sources[SQL_SOURCE_NAME]
    result = await run_read_only(source.url, "SELECT COUNT(*) FROM customers", 10, 5.0, tables=source.tables)
    assert result["rows"] == [[20]]

    hits = await knowledge.search_for_agent(
        ctx, "Kaiskdri Collective chief engineer", limit=3, mode=SearchMode.fulltext
    )
    assert hits and hits[0]["title"].startswith("Kaiskdri Collective")
