"""The knowledge base service: CRUD with version history, search, and bulk creation.

Public functions (every one takes the process :class:`~agentlightning.core.context.AppContext`)::

    create_item(ctx, data: KnowledgeItemCreate, *, user) -> KnowledgeItemOut
    get_item(ctx, item_id) -> KnowledgeItemOut                       # KNOWLEDGE_ITEM_NOT_FOUND (404)
    list_items(ctx, *, category=None, tags=(), limit=20, offset=0) -> ItemPage
    update_item(ctx, item_id, data: KnowledgeItemUpdate, *, user) -> KnowledgeItemOut  # VERSION_CONFLICT (409)
    delete_item(ctx, item_id) -> None
    list_versions(ctx, item_id) -> list[KnowledgeVersionOut]         # newest first, current included
    get_version(ctx, item_id, version) -> KnowledgeVersionOut        # KNOWLEDGE_VERSION_NOT_FOUND (404)
    bulk_create(ctx, data: BulkCreate, *, user) -> BulkResult
    search_page(ctx, query: SearchQuery) -> SearchResult             # cached 30 min
    search(ctx, query, *, mode="hybrid", limit=5, category=None, tags=(), offset=0) -> list[SearchHit]
    search_for_agent(ctx, query, *, limit=5, category=None, mode="hybrid") -> list[dict]  # knowledge_search tool

``SearchHit`` has ``id``, ``title``, ``snippet`` (HTML with ``<mark>``), ``score``, ``category``,
``tags``, ``version``, ``updated_at`` and ``ranks``. ``search_for_agent`` returns plain-text
snippets (marks removed) so an agent can quote them and cite ``[#id]``.

Every write commits the item, its previous version and its embedding in one transaction, then
invalidates the cached searches it could change and publishes a ``knowledge`` event.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.core.context import AppContext
from agentlightning.errors import Conflict, NotFound, ServiceUnavailable
from agentlightning.knowledge import cache as search_cache
from agentlightning.knowledge.embeddings import EmbeddingUnavailable, embedding_text, get_embedder
from agentlightning.knowledge.ingest.bulk import insert_records
from agentlightning.knowledge.ingest.parsers import IngestRecord, content_hash
from agentlightning.knowledge.schemas import (
    BulkCreate,
    BulkResult,
    ItemPage,
    KnowledgeItemCreate,
    KnowledgeItemOut,
    KnowledgeItemUpdate,
    KnowledgeVersionOut,
    SearchHit,
    SearchMode,
    SearchQuery,
    SearchResult,
)
from agentlightning.knowledge.search.engine import run_search
from agentlightning.knowledge.search.filters import item_filters
from agentlightning.knowledge.search.vectors import get_backend
from agentlightning.observability import metrics
from agentlightning.storage.models.knowledge import KnowledgeItem, KnowledgeItemVersion
from agentlightning.storage.types import as_utc, utcnow

log = logging.getLogger(__name__)

EVENT_TOPIC = "knowledge"
_MARK = re.compile(r"</?mark>")


def item_out(item: KnowledgeItem) -> KnowledgeItemOut:
    """The API shape of an item row."""
    return KnowledgeItemOut(
        id=item.id,
        title=item.title,
        content=item.content,
        category=item.category,
        tags=list(item.tags or []),
        metadata=dict(item.meta or {}),
        created_at=as_utc(item.created_at),
        updated_at=as_utc(item.updated_at),
        created_by=item.created_by,
        updated_by=item.updated_by,
        version=item.version,
    )


def _not_found(item_id: int) -> NotFound:
    return NotFound(
        "KNOWLEDGE_ITEM_NOT_FOUND", f"Knowledge item with ID '{item_id}' not found", details={"item_id": item_id}
    )


async def _embed_and_store(session: AsyncSession, items: Sequence[KnowledgeItem]) -> int:
    """Embed ``items`` and write their vectors in the session; 0 when the model is unavailable."""
    embedder = get_embedder()
    try:
        vectors = await embedder.aencode([embedding_text(i.title, i.content) for i in items])
    except EmbeddingUnavailable as exc:
        log.warning("items stored without embeddings: %s", exc)
        return 0
    backend = await get_backend(session)
    await backend.upsert(session, [(i.id, v) for i, v in zip(items, vectors)], embedder.model_name)
    return len(items)


async def _after_write(ctx: AppContext, event: str, categories: Sequence[str | None], data: dict[str, Any]) -> None:
    await search_cache.invalidate(ctx.cache, categories)
    await ctx.events.publish(EVENT_TOPIC, event, data)


async def create_item(ctx: AppContext, data: KnowledgeItemCreate, *, user: str | None) -> KnowledgeItemOut:
    """Create an item at version 1 (embedded for semantic search when the model is installed)."""
    async with ctx.db.session() as session:
        item = KnowledgeItem(
            title=data.title,
            content=data.content,
            category=data.category,
            tags=data.tags,
            meta=data.metadata,
            created_by=user,
            updated_by=user,
            version=1,
            content_hash=content_hash(data.title, data.content, data.category, data.tags),
        )
        session.add(item)
        await session.flush()
        await _embed_and_store(session, [item])
        await session.commit()
        out = item_out(item)
    await _after_write(ctx, "item_created", [out.category], {"id": out.id, "version": 1})
    return out


async def get_item(ctx: AppContext, item_id: int) -> KnowledgeItemOut:
    """One item, or ``KNOWLEDGE_ITEM_NOT_FOUND``."""
    async with ctx.db.session() as session:
        item = await session.get(KnowledgeItem, item_id)
        if item is None:
            raise _not_found(item_id)
        return item_out(item)


async def list_items(
    ctx: AppContext, *, category: str | None = None, tags: Sequence[str] = (), limit: int = 20, offset: int = 0
) -> ItemPage:
    """Items newest first, optionally filtered by category and (all of) tags."""
    async with ctx.db.session() as session:
        filters = item_filters(ctx.db.dialect, category, tags)
        total = (await session.execute(select(func.count()).select_from(KnowledgeItem).where(*filters))).scalar_one()
        rows = await session.execute(
            select(KnowledgeItem).where(*filters).order_by(KnowledgeItem.id.desc()).limit(limit).offset(offset)
        )
        return ItemPage(items=[item_out(i) for i in rows.scalars()], limit=limit, offset=offset, total=int(total))


def _snapshot(item: KnowledgeItem) -> KnowledgeItemVersion:
    return KnowledgeItemVersion(
        item_id=item.id,
        version=item.version,
        title=item.title,
        content=item.content,
        category=item.category,
        tags=list(item.tags or []),
        meta=dict(item.meta or {}),
        changed_by=item.updated_by or item.created_by,
        valid_from=item.updated_at,
        valid_to=utcnow(),
    )


async def update_item(
    ctx: AppContext, item_id: int, data: KnowledgeItemUpdate, *, user: str | None
) -> KnowledgeItemOut:
    """Apply the given fields, keep the previous version, bump ``version`` (a no-op change keeps it)."""
    changes = data.model_dump(exclude_unset=True, exclude={"expected_version"})
    async with ctx.db.session() as session:
        item = await session.get(KnowledgeItem, item_id, with_for_update=True)
        if item is None:
            raise _not_found(item_id)
        if data.expected_version is not None and data.expected_version != item.version:
            raise Conflict(
                "VERSION_CONFLICT",
                f"Knowledge item '{item_id}' is at version {item.version}, not {data.expected_version}",
                details={"item_id": item_id, "current_version": item.version},
            )
        current = {
            "title": item.title,
            "content": item.content,
            "category": item.category,
            "tags": list(item.tags or []),
            "metadata": dict(item.meta or {}),
        }
        changed = {k: v for k, v in changes.items() if current[k] != v}
        old_category = item.category
        if not changed:
            return item_out(item)
        session.add(_snapshot(item))
        for key, value in changed.items():
            setattr(item, "meta" if key == "metadata" else key, value)
        item.version += 1
        item.updated_by = user
        item.updated_at = utcnow()
        item.content_hash = content_hash(item.title, item.content, item.category, list(item.tags or []))
        if "title" in changed or "content" in changed:
            await _embed_and_store(session, [item])
        await session.commit()
        out = item_out(item)
    await _after_write(ctx, "item_updated", [old_category, out.category], {"id": item_id, "version": out.version})
    return out


async def delete_item(ctx: AppContext, item_id: int) -> None:
    """Delete an item with its versions and embedding."""
    async with ctx.db.session() as session:
        item = await session.get(KnowledgeItem, item_id)
        if item is None:
            raise _not_found(item_id)
        category = item.category
        backend = await get_backend(session)
        await backend.delete(session, [item_id])
        await session.execute(delete(KnowledgeItemVersion).where(KnowledgeItemVersion.item_id == item_id))
        await session.delete(item)
        await session.commit()
    backend.forget([item_id])
    await _after_write(ctx, "item_deleted", [category], {"id": item_id})


def _version_out(v: KnowledgeItemVersion) -> KnowledgeVersionOut:
    return KnowledgeVersionOut(
        item_id=v.item_id,
        version=v.version,
        title=v.title,
        content=v.content,
        category=v.category,
        tags=list(v.tags or []),
        metadata=dict(v.meta or {}),
        changed_by=v.changed_by,
        valid_from=as_utc(v.valid_from),
        valid_to=as_utc(v.valid_to),
    )


def _current_version_out(item: KnowledgeItem) -> KnowledgeVersionOut:
    return _version_out(_snapshot(item)).model_copy(update={"valid_to": None, "current": True})


async def list_versions(ctx: AppContext, item_id: int) -> list[KnowledgeVersionOut]:
    """Every version of an item, newest (the current one) first."""
    async with ctx.db.session() as session:
        item = await session.get(KnowledgeItem, item_id)
        if item is None:
            raise _not_found(item_id)
        rows = await session.execute(
            select(KnowledgeItemVersion)
            .where(KnowledgeItemVersion.item_id == item_id)
            .order_by(KnowledgeItemVersion.version.desc())
        )
        return [_current_version_out(item), *(_version_out(v) for v in rows.scalars())]


async def get_version(ctx: AppContext, item_id: int, version: int) -> KnowledgeVersionOut:
    """One version of an item (the current one too)."""
    async with ctx.db.session() as session:
        item = await session.get(KnowledgeItem, item_id)
        if item is None:
            raise _not_found(item_id)
        if version == item.version:
            return _current_version_out(item)
        row = (
            await session.execute(
                select(KnowledgeItemVersion).where(
                    KnowledgeItemVersion.item_id == item_id, KnowledgeItemVersion.version == version
                )
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(
                "KNOWLEDGE_VERSION_NOT_FOUND",
                f"Knowledge item '{item_id}' has no version {version}",
                details={"item_id": item_id, "version": version, "current_version": item.version},
            )
        return _version_out(row)


async def bulk_create(ctx: AppContext, data: BulkCreate, *, user: str | None) -> BulkResult:
    """Create many items in one transaction (COPY on PostgreSQL), skipping stored content if asked."""
    records = [
        IngestRecord(title=i.title, content=i.content, category=i.category, tags=i.tags, metadata=i.metadata)
        for i in data.items
    ]
    async with ctx.db.session() as session:
        outcome = await insert_records(
            session, records, created_by=user, skip_existing=data.skip_existing, embed=data.embed
        )
        await session.commit()
    if outcome.ids:
        await _after_write(
            ctx, "items_imported", sorted({r.category for r in records}, key=str), {"count": len(outcome.ids)}
        )
    return BulkResult(created=len(outcome.ids), skipped=outcome.skipped, ids=outcome.ids, embedded=outcome.embedded)


async def search_page(ctx: AppContext, query: SearchQuery) -> SearchResult:
    """Search with the 30-minute result cache (see :mod:`agentlightning.knowledge.cache`).

    Records ``knowledge_search_total{mode,cache}`` and, for searches that ran against the
    database, ``knowledge_search_duration_seconds{mode}``.
    """
    mode = query.mode.value
    key = await search_cache.cache_key(ctx.cache, query)
    if key is not None:
        cached = await search_cache.get(ctx.cache, key)
        if cached is not None:
            metrics.KNOWLEDGE_SEARCHES.labels(mode, "hit").inc()
            return cached.model_copy(update={"cached": True})
    started = time.perf_counter()
    embedder = get_embedder()
    try:
        async with ctx.db.session() as session:
            result = await run_search(
                session,
                query,
                embedder,
                model=embedder.model_name,
                rank_candidates=ctx.settings.knowledge_rank_candidates,
            )
    except EmbeddingUnavailable as exc:
        raise ServiceUnavailable(
            "SEMANTIC_SEARCH_UNAVAILABLE", str(exc), details={"mode": mode, "try": "mode=fulltext"}
        ) from exc
    metrics.KNOWLEDGE_SEARCH_DURATION.labels(mode).observe(time.perf_counter() - started)
    metrics.KNOWLEDGE_SEARCHES.labels(mode, "miss" if key is not None else "bypass").inc()
    if key is not None:
        await search_cache.put(ctx.cache, key, result)
    return result


async def search(
    ctx: AppContext,
    query: str,
    *,
    mode: SearchMode | str = SearchMode.hybrid,
    limit: int = 5,
    category: str | None = None,
    tags: Sequence[str] = (),
    offset: int = 0,
) -> list[SearchHit]:
    """The hits for ``query`` (see the module docstring); the entry point for code, not HTTP."""
    page = await search_page(
        ctx,
        SearchQuery(q=query, mode=SearchMode(mode), category=category, tags=list(tags), limit=limit, offset=offset),
    )
    return page.items


async def search_for_agent(
    ctx: AppContext,
    query: str,
    *,
    limit: int = 5,
    category: str | None = None,
    mode: SearchMode | str = SearchMode.hybrid,
) -> list[dict[str, Any]]:
    """Search for the agents' ``knowledge_search`` tool (hybrid by default): plain-text snippets, ids to cite."""
    query = " ".join(query.split())[:1000]
    if not query:
        return []
    hits = await search(ctx, query, mode=mode, limit=max(1, min(limit, 100)), category=category)
    return [
        {
            "id": h.id,
            "title": h.title,
            "snippet": _MARK.sub("", h.snippet),
            "category": h.category,
            "score": h.score,
            "version": h.version,
        }
        for h in hits
    ]
