"""How agents reach the knowledge base: one function, :func:`search_knowledge`.

It prefers the knowledge package's search service (full-text + semantic, owned by
``agentlightning.knowledge``) and falls back to a plain ``LIKE`` scan of ``knowledge_items``
when that service is not installed, so the ``knowledge_search`` tool always works.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from agentlightning.storage.models import KnowledgeItem

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

log = logging.getLogger(__name__)
SNIPPET_CHARS = 400


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_knowledge(
    ctx: AppContext, query: str, limit: int = 5, category: str | None = None
) -> list[dict[str, Any]]:
    """Search the knowledge base; each hit has ``id``, ``title``, ``snippet``, ``category``, ``score``."""
    service_hits = await _via_service(ctx, query, limit, category)
    if service_hits is not None:
        return service_hits
    return await _like_fallback(ctx, query, limit, category)


async def _via_service(ctx: AppContext, query: str, limit: int, category: str | None) -> list[dict[str, Any]] | None:
    try:
        module = importlib.import_module("agentlightning.knowledge.service")
    except ImportError:
        return None
    search = getattr(module, "search_for_agent", None)
    if search is None:
        return None
    try:
        result = search(ctx, query, limit=limit, category=category)
        if inspect.isawaitable(result):
            result = await result
    except Exception:  # noqa: BLE001 - a broken search service must not break the agent
        log.exception("knowledge service search failed; using the LIKE fallback")
        return None
    return [_normalise(hit) for hit in result]


def _normalise(hit: Any) -> dict[str, Any]:
    if not isinstance(hit, dict):
        hit = {
            k: getattr(hit, k) for k in ("id", "title", "content", "snippet", "category", "score") if hasattr(hit, k)
        }
    snippet = hit.get("snippet") or (hit.get("content") or "")[:SNIPPET_CHARS]
    return {
        "id": hit.get("id"),
        "title": hit.get("title"),
        "snippet": snippet,
        "category": hit.get("category"),
        "score": hit.get("score"),
    }


async def _like_fallback(ctx: AppContext, query: str, limit: int, category: str | None) -> list[dict[str, Any]]:
    words = [w for w in query.split() if len(w) > 2][:8] or [query.strip()]
    conditions = []
    for w in words:
        pattern = f"%{_escape_like(w)}%"
        conditions += [
            KnowledgeItem.title.ilike(pattern, escape="\\"),
            KnowledgeItem.content.ilike(pattern, escape="\\"),
        ]
    stmt = select(KnowledgeItem.id, KnowledgeItem.title, KnowledgeItem.content, KnowledgeItem.category).where(
        or_(*conditions)
    )
    if category:
        stmt = stmt.where(KnowledgeItem.category == category)
    async with ctx.db.session() as s:
        rows = (await s.execute(stmt.order_by(KnowledgeItem.id.desc()).limit(limit * 4))).all()
    scored = []
    lowered = [w.lower() for w in words]
    for id_, title, content, cat in rows:
        text = f"{title} {content}".lower()
        score = sum(text.count(w) for w in lowered)
        scored.append((score, id_, title, content, cat))
    scored.sort(key=lambda r: (-r[0], -r[1]))
    return [
        {"id": id_, "title": title, "snippet": content[:SNIPPET_CHARS], "category": cat, "score": float(score)}
        for score, id_, title, content, cat in scored[:limit]
    ]
