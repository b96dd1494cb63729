"""File imports through the pipeline (resumable) and the agents' knowledge_search path."""

from __future__ import annotations

import uuid
from pathlib import Path

from agentlightning.agents.knowledge_bridge import search_knowledge
from agentlightning.core.context import AppContext
from agentlightning.knowledge import service
from agentlightning.knowledge.ingest.parsers import ParseOptions, discover
from agentlightning.knowledge.ingest.pipeline import import_paths
from agentlightning.knowledge.maintenance import count_missing_embeddings, embed_missing


async def test_import_is_resumable_and_searchable(ctx: AppContext, tmp_path: Path) -> None:
    category = f"imp-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex[:8]
    (tmp_path / "runbook.md").write_text(
        f"# Runbook {marker}\n\n## Restart\n\nRestart the zeppelin{marker} service with systemctl.\n\n"
        "## Backups\n\nNightly backups go to object storage.\n"
    )
    (tmp_path / "faq.csv").write_text(f"title,content\nDisk full,Free space on the zeppelin{marker} volume\n")
    (tmp_path / "broken.jsonl").write_text("not json\n")
    files = discover([tmp_path])
    options = ParseOptions(category=category)
    seen: list[int] = []
    report = await import_paths(ctx, files, options, embed=False, on_progress=seen.append)
    assert report.created == 3 and report.skipped == 0 and sum(seen) == 3
    assert [f.path.endswith("broken.jsonl") for f in report.failed] == [True]

    again = await import_paths(ctx, files, options, embed=False)
    assert again.created == 0 and again.skipped == 3, "re-importing unchanged files adds nothing"

    hits = await service.search(ctx, f"zeppelin{marker}", mode="fulltext", category=category)
    assert {h.title for h in hits} == {f"Runbook {marker} › Restart", "Disk full"}

    assert await count_missing_embeddings(ctx) >= 3
    assert await embed_missing(ctx) >= 3
    assert await count_missing_embeddings(ctx) == 0
    semantic = await service.search(ctx, "bring the service back up", mode="semantic", category=category)
    assert semantic[0].title == f"Runbook {marker} › Restart"


async def test_agent_tool_path_returns_citable_hits(ctx: AppContext) -> None:
    category = f"agent-{uuid.uuid4().hex[:8]}"
    from agentlightning.knowledge.schemas import KnowledgeItemCreate

    item = await service.create_item(
        ctx,
        KnowledgeItemCreate(title="Refund policy", content="Customers may request a refund within 30 days.", category=category),
        user="tester",
    )
    hits = await search_knowledge(ctx, "can I get my money back", limit=3, category=category)
    assert hits[0]["id"] == item.id and hits[0]["title"] == "Refund policy"
    assert "<mark>" not in hits[0]["snippet"] and "refund" in hits[0]["snippet"].lower()
    assert await service.search_for_agent(ctx, "   ") == []
