"""Runs a search in one of the three modes and turns ranked ids into hits with snippets.

``hybrid`` takes the top :data:`HYBRID_POOL` (or more, for deep pages) of both rankings and fuses
them with reciprocal rank fusion; an item found by both rises above one found by either alone.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.embeddings import Embedder
from agentlightning.knowledge.schemas import SearchHit, SearchMode, SearchQuery, SearchResult
from agentlightning.knowledge.search.fulltext import RANK_CANDIDATES, fulltext_ranking
from agentlightning.knowledge.search.fusion import reciprocal_rank_fusion
from agentlightning.knowledge.search.query import parse
from agentlightning.knowledge.search.semantic import semantic_ranking
from agentlightning.knowledge.search.snippets import highlight
from agentlightning.storage.models.knowledge import KnowledgeItem
from agentlightning.storage.types import as_utc

#: Candidates taken from each ranking before fusion.
HYBRID_POOL = 50


async def _hits(
    session: AsyncSession, ranked: list[tuple[int, float]], ranks: dict[int, dict[str, int]], query: str
) -> list[SearchHit]:
    if not ranked:
        return []
    ids = [item_id for item_id, _ in ranked]
    rows = await session.execute(select(KnowledgeItem).where(KnowledgeItem.id.in_(ids)))
    items = {item.id: item for item in rows.scalars()}
    terms = parse(query).positive_terms
    hits = []
    for item_id, score in ranked:
        item = items.get(item_id)
        if item is None:  # deleted between ranking and fetching
            continue
        hits.append(
            SearchHit(
                id=item.id,
                title=item.title,
                snippet=highlight(item.content, terms),
                score=round(score, 6),
                category=item.category,
                tags=list(item.tags or []),
                version=item.version,
                updated_at=as_utc(item.updated_at),
                ranks=ranks.get(item_id, {}),
            )
        )
    return hits


async def run_search(
    session: AsyncSession,
    query: SearchQuery,
    embedder: Embedder,
    *,
    model: str,
    rank_candidates: int = RANK_CANDIDATES,
) -> SearchResult:
    """Answer ``query`` from the database (no caching here; see ``knowledge.service.search``).

    ``rank_candidates`` bounds how many full-text matches are scored (see ``search.fulltext``).
    """
    started = time.perf_counter()
    window = query.limit + 1  # one extra tells whether another page exists
    common: dict[str, Any] = {"category": query.category, "tags": query.tags}
    ranks: dict[int, dict[str, int]] = {}
    bounded = False
    if query.mode is SearchMode.fulltext:
        text_result = await fulltext_ranking(
            session, query.q, limit=window, offset=query.offset, candidates=rank_candidates, **common
        )
        ranked, bounded = text_result.ranked, text_result.bounded
        for position, (item_id, _) in enumerate(ranked, start=query.offset + 1):
            ranks[item_id] = {"fulltext": position}
    elif query.mode is SearchMode.semantic:
        vector = await embedder.aencode_one(query.q)
        ranked = await semantic_ranking(session, vector, model=model, limit=window, offset=query.offset, **common)
        for position, (item_id, _) in enumerate(ranked, start=query.offset + 1):
            ranks[item_id] = {"semantic": position}
    else:
        pool = max(HYBRID_POOL, 2 * (query.offset + window))
        vector = await embedder.aencode_one(query.q)
        text_result = await fulltext_ranking(session, query.q, limit=pool, candidates=rank_candidates, **common)
        text_ranked, bounded = text_result.ranked, text_result.bounded
        vector_ranked = await semantic_ranking(session, vector, model=model, limit=pool, **common)
        for name, ranking in (("fulltext", text_ranked), ("semantic", vector_ranked)):
            for position, (item_id, _) in enumerate(ranking, start=1):
                ranks.setdefault(item_id, {})[name] = position
        fused = reciprocal_rank_fusion([[i for i, _ in text_ranked], [i for i, _ in vector_ranked]])
        ranked = fused[query.offset : query.offset + window]
    hits = await _hits(session, ranked, ranks, query.q)
    return SearchResult(
        query=query.q,
        mode=query.mode,
        items=hits[: query.limit],
        limit=query.limit,
        offset=query.offset,
        has_more=len(ranked) > query.limit,
        ranking_bounded=bounded,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )
