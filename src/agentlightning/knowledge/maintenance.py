"""Keeping embeddings complete: embed items that have none (or one from another model)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from agentlightning.core.context import AppContext
from agentlightning.knowledge.embeddings import embedding_text, get_embedder
from agentlightning.knowledge.ingest.bulk import store_vectors
from agentlightning.knowledge.search.vectors import get_backend

_MISSING = (
    "FROM knowledge_items k LEFT JOIN knowledge_embeddings e ON e.item_id = k.id "
    "WHERE (e.item_id IS NULL OR e.model != :model)"
)


async def count_missing_embeddings(ctx: AppContext) -> int:
    """Items without an embedding from the current model."""
    async with ctx.db.session() as session:
        return int(
            (
                await session.execute(text(f"SELECT count(*) {_MISSING}"), {"model": get_embedder().model_name})
            ).scalar_one()
        )


async def embed_missing(
    ctx: AppContext, *, batch_size: int = 256, on_progress: Callable[[int], None] | None = None
) -> int:
    """Embed every item lacking a current embedding, one committed batch at a time; returns how many."""
    embedder = get_embedder()
    done = 0
    after = 0
    while True:
        async with ctx.db.session() as session:
            rows = (
                await session.execute(
                    text(
                        f"SELECT k.id, k.title, k.content, e.item_id {_MISSING} AND k.id > :after ORDER BY k.id LIMIT :n"
                    ),
                    {"model": embedder.model_name, "after": after, "n": batch_size},
                )
            ).all()
            if not rows:
                return done
            vectors = await embedder.aencode([embedding_text(r[1], r[2]) for r in rows])
            stale = [(int(r[0]), v) for r, v in zip(rows, vectors) if r[3] is not None]
            fresh = [(int(r[0]), v) for r, v in zip(rows, vectors) if r[3] is None]
            if fresh:
                await store_vectors(session, [i for i, _ in fresh], [v for _, v in fresh], embedder.model_name)
            if stale:
                await (await get_backend(session)).upsert(session, stale, embedder.model_name)
            await session.commit()
        done += len(rows)
        after = int(rows[-1][0])
        if on_progress:
            on_progress(len(rows))
