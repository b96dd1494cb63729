"""Full-text ranking per database.

PostgreSQL: ``websearch_to_tsquery('english', q)`` against the stored ``search_vector`` (title at
weight A, content at weight B, GIN-indexed), ranked by ``ts_rank_cd`` normalised to 0..1.
SQLite: the same query syntax translated to an FTS5 expression (:func:`query.to_fts5`), ranked by
BM25 with the title weighted 10x the content.

Both return ``(item_id, score)`` best first, higher is better.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import column, func, literal, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.knowledge.search.filters import item_filters
from agentlightning.knowledge.search.query import to_fts5
from agentlightning.storage.models.knowledge import KnowledgeItem

#: FTS5 bm25() column weights: title, content.
SQLITE_WEIGHTS = (10.0, 1.0)
#: ts_rank_cd normalisation 32: rank / (rank + 1).
PG_RANK_NORMALISATION = 32

_fts = table("knowledge_fts", column("rowid"))


async def fulltext_ranking(
    session: AsyncSession, query: str, *, category: str | None, tags: Sequence[str], limit: int, offset: int = 0
) -> list[tuple[int, float]]:
    """Items matching ``query`` (web-search syntax) with their text-relevance score, best first."""
    dialect = session.bind.dialect.name
    filters = item_filters(dialect, category, tags)
    if dialect == "postgresql":
        tsquery = func.websearch_to_tsquery(literal_column("'english'::regconfig"), literal(query))
        vector = literal_column("knowledge_items.search_vector")
        score = func.ts_rank_cd(vector, tsquery, PG_RANK_NORMALISATION).label("score")
        statement = (
            select(KnowledgeItem.id, score)
            .where(vector.op("@@")(tsquery), *filters)
            .order_by(score.desc(), KnowledgeItem.id)
        )
    else:
        expression = to_fts5(query)
        if expression is None:
            return []
        score = (-func.bm25(literal_column("knowledge_fts"), *SQLITE_WEIGHTS)).label("score")
        statement = (
            select(KnowledgeItem.id, score)
            .select_from(_fts)
            .join(KnowledgeItem, KnowledgeItem.id == _fts.c.rowid)
            .where(literal_column("knowledge_fts").op("MATCH")(expression), *filters)
            .order_by(score.desc(), KnowledgeItem.id)
        )
    rows = await session.execute(statement.limit(limit).offset(offset))
    return [(int(r[0]), float(r[1])) for r in rows]
