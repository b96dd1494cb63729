"""Semantic ranking: embed the query, ask the vector backend for neighbours, apply the filters.

Nearest-neighbour indexes know nothing of categories or tags, so the backend is asked for more
candidates than needed and the filters are applied in SQL; when a selective filter leaves too few,
the candidate pool grows (up to :data:`MAX_CANDIDATES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import Embedder
from agentlightning.knowledge.search.filters import item_filters
from agentlightning.knowledge.search.vectors import get_backend
from agentlightning.storage.models.knowledge import KnowledgeItem

MAX_CANDIDATES = 5000
#: Candidates per wanted result: without filters a few spare for deleted items, with filters more.
OVERFETCH = 2
FILTERED_OVERFETCH = 10


async def semantic_ranking(
    session: AsyncSession,
    query_vector: np.ndarray,
    *,
    model: str,
    category: str | None,
    tags: Sequence[str],
    limit: int,
    offset: int = 0,
) -> list[tuple[int, float]]:
    """Items nearest to ``query_vector`` that pass the filters, ``(item_id, cosine)`` best first."""
    backend = await get_backend(session)
    wanted = limit + offset
    filtered = bool(category or tags)
    k = max(wanted * (FILTERED_OVERFETCH if filtered else OVERFETCH), 20)
    while True:
        neighbours = await backend.search(session, query_vector, k, model)
        ids = [item_id for item_id, _ in neighbours]
        if not ids:
            return []
        rows = await session.execute(
            select(KnowledgeItem.id).where(
                KnowledgeItem.id.in_(ids), *item_filters(session.get_bind().dialect.name, category, tags)
            )
        )
        keep = {int(r[0]) for r in rows}
        ranked = [(item_id, score) for item_id, score in neighbours if item_id in keep]
        exhausted = len(neighbours) < k or k >= MAX_CANDIDATES
        if len(ranked) >= wanted or exhausted:
            return ranked[offset:wanted]
        k = min(k * 4, MAX_CANDIDATES)


async def embed_query(embedder: Embedder, query: str) -> np.ndarray:
    """The query's embedding (same model and normalisation as the stored items)."""
    return await embedder.aencode_one(query)
