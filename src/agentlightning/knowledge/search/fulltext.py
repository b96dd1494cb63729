"""Full-text ranking per database.

PostgreSQL: ``websearch_to_tsquery('english', q)`` against the stored ``search_vector`` (title at
weight A, content at weight B, GIN-indexed), ranked by ``ts_rank_cd`` normalised to 0..1. Ranking
is bounded: the GIN index (or, for very common terms, a sequential scan that stops early; the
planner picks) finds at most :data:`RANK_CANDIDATES` matching rows and only those are ranked.
Ranking every match of a common term means reading and scoring tens of thousands of rows (0.3-1.7 s
at 1M items); with the bound a search costs about the same whatever the term's frequency. When
more items match, the ranking is exact over the candidates but not over all matches, and the
result says so (``ranking_bounded``); narrowing the query (more words, a phrase, a category)
makes it exact again. ``plan_cache_mode`` is forced to custom plans for the search, so a prepared
statement never falls back to a generic plan that cannot see how selective the query is.
SQLite: the same query syntax translated to an FTS5 expression (:func:`query.to_fts5`), ranked by
BM25 with the title weighted 10x the content.

Both return ``(item_id, score)`` best first, higher is better. Neither counts all matches: paging
uses one extra row (``has_more``), not a ``COUNT(*)`` that would visit every matching row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import column, func, literal, literal_column, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.search.filters import item_filters
from agentlightning.knowledge.search.query import to_fts5
from agentlightning.storage.models.knowledge import KnowledgeItem

#: FTS5 bm25() column weights: title, content.
SQLITE_WEIGHTS = (10.0, 1.0)
#: ts_rank_cd normalisation 32: rank / (rank + 1).
PG_RANK_NORMALISATION = 32
#: Matching rows ranked per PostgreSQL search (at least offset + limit).
RANK_CANDIDATES = 1000

_fts = table("knowledge_fts", column("rowid"))


@dataclass
class FulltextRanking:
    """``(item_id, score)`` best first, and whether more items matched than were ranked."""

    ranked: list[tuple[int, float]] = field(default_factory=list)
    bounded: bool = False


async def _postgres_ranking(
    session: AsyncSession, query: str, filters: list[Any], *, limit: int, offset: int, candidates: int
) -> FulltextRanking:
    cap = max(candidates, offset + limit)
    tsquery = func.websearch_to_tsquery(literal_column("'english'::regconfig"), literal(query))
    vector: Any = literal_column("knowledge_items.search_vector")
    matches = (
        select(KnowledgeItem.id.label("id"), vector.label("search_vector"))
        .where(vector.op("@@")(tsquery), *filters)
        .limit(cap + 1)  # one more tells whether the bound was reached
        .cte("matches")
        .prefix_with("MATERIALIZED")
    )
    score = func.ts_rank_cd(matches.c.search_vector, tsquery, PG_RANK_NORMALISATION).label("score")
    total = func.count().over().label("matched")
    statement = select(matches.c.id, score, total).order_by(score.desc(), matches.c.id).limit(limit).offset(offset)
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = (await session.execute(statement)).all()
    return FulltextRanking([(int(r[0]), float(r[1])) for r in rows], bounded=bool(rows) and int(rows[0][2]) > cap)


async def fulltext_ranking(
    session: AsyncSession,
    query: str,
    *,
    category: str | None,
    tags: Sequence[str],
    limit: int,
    offset: int = 0,
    candidates: int = RANK_CANDIDATES,
) -> FulltextRanking:
    """Items matching ``query`` (web-search syntax) with their text-relevance score, best first."""
    dialect = session.get_bind().dialect.name
    filters = item_filters(dialect, category, tags)
    if dialect == "postgresql":
        return await _postgres_ranking(session, query, filters, limit=limit, offset=offset, candidates=candidates)
    else:
        expression = to_fts5(query)
        if expression is None:
            return FulltextRanking()
        score = (-func.bm25(literal_column("knowledge_fts"), *SQLITE_WEIGHTS)).label("score")
        statement = (
            select(KnowledgeItem.id, score)
            .select_from(_fts)
            .join(KnowledgeItem, KnowledgeItem.id == _fts.c.rowid)
            .where(literal_column("knowledge_fts").op("MATCH")(expression), *filters)
            .order_by(score.desc(), KnowledgeItem.id)
        )
    rows = await session.execute(statement.limit(limit).offset(offset))
    return FulltextRanking([(int(r[0]), float(r[1])) for r in rows])
