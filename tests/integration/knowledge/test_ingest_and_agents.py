"""File imports through the pipeline (resumable) and the agents' knowledge_search path."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

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
        KnowledgeItemCreate(
            title="Refund policy", content="Customers may request a refund within 30 days.", category=category
        ),
        user="tester",
    )
    hits = await service.search_for_agent(ctx, "can I get my money back", limit=3, category=category)
    assert hits[0]["id"] == item.id and hits[0]["title"] == "Refund policy"
    assert "<mark>" not in hits[0]["snippet"] and "refund" in hits[0]["snippet"].lower()
    assert await service.search_for_agent(ctx, "   ") == []

    from agentlightning.agents.tools.base import ToolContext
    from agentlightning.agents.tools.knowledge_search import KnowledgeSearchTool

    tool_result = await KnowledgeSearchTool().run(
        {"query": "refund within 30 days", "limit": 2, "category": category}, ToolContext(ctx.settings, app=ctx)
    )
    assert [hit["id"] for hit in tool_result["results"]] == [item.id]


async def test_reimporting_a_changed_file_replaces_its_chunks(ctx: AppContext, tmp_path: Path) -> None:
    category = f"reimp-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex[:8]
    doc = tmp_path / "guide.md"
    other = tmp_path / "other.md"
    shared = f"## Shared\n\nEvery {marker} guide ends with this shared paragraph.\n"
    doc.write_text(
        f"# Guide {marker}\n\n## Alpha\n\nalpha{marker} was the old way.\n\n## Beta\n\nbeta{marker} stays.\n\n{shared}"
    )
    other.write_text(f"# Other {marker}\n\n{shared}")
    options = ParseOptions(category=category)
    first = await import_paths(ctx, [doc, other], options, embed=True)
    assert first.created == 4 and first.removed == 0
    beta_before = await service.search(ctx, f"beta{marker}", mode="fulltext", category=category)

    # The file changes: Alpha is rewritten, Shared is dropped, Beta is untouched.
    doc.write_text(f"# Guide {marker}\n\n## Alpha\n\ngamma{marker} is the new way.\n\n## Beta\n\nbeta{marker} stays.\n")
    again = await import_paths(ctx, [doc], options, embed=True)
    assert (again.created, again.skipped, again.removed) == (1, 1, 2)

    assert await service.search(ctx, f"alpha{marker}", mode="fulltext", category=category) == []
    assert [h.title for h in await service.search(ctx, f"gamma{marker}", mode="fulltext", category=category)] == [
        f"Guide {marker} › Alpha"
    ]
    beta_after = await service.search(ctx, f"beta{marker}", mode="fulltext", category=category)
    assert [h.id for h in beta_after] == [h.id for h in beta_before], "unchanged chunks keep their ids"
    # The other file's identical paragraph is its own item and survives.
    shared_hits = await service.search(ctx, f'"every {marker} guide"', mode="fulltext", category=category)
    assert [h.title for h in shared_hits] == [f"Other {marker} › Shared"]
    semantic = await service.search(ctx, f"alpha{marker} old way", mode="semantic", category=category, limit=10)
    assert all("alpha" not in h.snippet for h in semantic), "removed chunks leave the vector index too"

    # Importing it a third time, unchanged, touches nothing.
    third = await import_paths(ctx, [doc], options, embed=False)
    assert (third.created, third.skipped, third.removed) == (0, 2, 0)


async def test_index_service_warms_the_vector_index_at_start(ctx: AppContext, tmp_path: Path) -> None:
    from agentlightning.core.services import SERVICE_FACTORIES
    from agentlightning.knowledge.index_service import KnowledgeIndexService, create_index_service
    from agentlightning.knowledge.schemas import KnowledgeItemCreate
    from agentlightning.knowledge.search.usearch_backend import UsearchBackend
    from agentlightning.knowledge.search.vectors import get_backend

    assert "agentlightning.knowledge.index_service:create_index_service" in SERVICE_FACTORIES
    assert create_index_service(ctx.settings.model_copy(update={"knowledge_index_warmup": False})) is None
    category = f"warm-{uuid.uuid4().hex[:8]}"
    item = await service.create_item(
        ctx,
        KnowledgeItemCreate(title="Warm index", content="Vectors ready before the first query.", category=category),
        user="tester",
    )
    async with ctx.db.session() as session:
        backend = await get_backend(session)
    if isinstance(backend, UsearchBackend):
        backend._reset(None)  # a freshly started process: nothing in memory
        assert backend.state == "cold"
    settings = ctx.settings.model_copy(
        update={"knowledge_index_sync_seconds": 0.05, "knowledge_index_dir": str(tmp_path)}
    )

    async def warm() -> dict[str, object]:
        # Building the index competes with everything else on a loaded 2-core machine: allow minutes.
        deadline = time.monotonic() + 180
        while (await warmer.health())["status"] != "ok" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return await warmer.health()

    warmer = KnowledgeIndexService(settings)
    warmer.snapshot_min_vectors = 1  # this test's index is small
    await warmer.start(ctx)
    try:
        health = await warm()
        assert health["status"] == "ok" and health["backend"] == backend.name
        if isinstance(backend, UsearchBackend):
            assert backend.state == "ready" and health["indexed"] >= 1, "built without any search"
            assert health["warmed_from"] == "build"
        hits = await service.search(ctx, "embeddings loaded early", mode="semantic", category=category)
        assert hits[0].id == item.id
    finally:
        await warmer.stop()
    if isinstance(backend, UsearchBackend):  # a restart reloads the snapshot saved at stop
        assert list(tmp_path.glob("usearch-*.npz"))
        backend._reset(None)
        warmer = KnowledgeIndexService(settings)
        await warmer.start(ctx)
        try:
            assert (await warm())["warmed_from"] == "snapshot"
            hits = await service.search(ctx, "embeddings loaded early", mode="semantic", category=category)
            assert hits[0].id == item.id
        finally:
            await warmer.stop()
