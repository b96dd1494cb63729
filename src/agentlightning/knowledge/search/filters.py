"""``category`` and ``tags`` filters as SQL, per dialect (tags: the item must carry all of them)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Text, cast, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, array

from agentlightning.storage.models.knowledge import KnowledgeItem


def item_filters(dialect: str, category: str | None, tags: Sequence[str]) -> list[ColumnElement[bool]]:
    """WHERE clauses on ``knowledge_items`` for a category and a set of required tags."""
    clauses: list[ColumnElement[bool]] = []
    if category:
        clauses.append(KnowledgeItem.category == category)
    if tags:
        if dialect == "postgresql":
            # Uses the spec's GIN index on tags.
            clauses.append(KnowledgeItem.tags.op("@>")(cast(array(list(tags)), ARRAY(Text))))
        else:
            for tag in tags:
                each = func.json_each(KnowledgeItem.tags).table_valued("value")
                clauses.append(exists(select(literal_column("1")).select_from(each).where(each.c.value == tag)))
    return clauses
