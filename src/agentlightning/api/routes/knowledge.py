"""Knowledge management endpoints: CRUD with version history, search, bulk import.

``/api/v2/knowledge/search`` and ``/api/v2/knowledge/bulk`` are declared before ``/{item_id}`` so
they are never taken for an item id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import OffsetQuery, OptText, OptTextList, ReqText
from agentlightning.auth.service import Principal
from agentlightning.knowledge import service
from agentlightning.knowledge.schemas import (
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_OFFSET,
    BulkCreate,
    BulkResult,
    ItemDeleted,
    ItemPage,
    KnowledgeItemCreate,
    KnowledgeItemOut,
    KnowledgeItemUpdate,
    KnowledgeVersionOut,
    SearchMode,
    SearchQuery,
    SearchResult,
)

router = APIRouter(prefix="/api/v2/knowledge", tags=["knowledge"], responses=ERROR_RESPONSES)

ItemId = Path(ge=1, le=2**31 - 1, description="Knowledge item id")


def _tags(tags: list[str] | None) -> list[str]:
    """``?tags=a,b`` and ``?tags=a&tags=b`` both mean "tagged a and b"."""
    return [t.strip() for value in tags or [] for t in value.split(",") if t.strip()]


@router.get("/search", response_model=Envelope[SearchResult])
async def search(
    ctx: Ctx,
    q: Annotated[
        ReqText,
        Query(min_length=1, max_length=1000, description='Web-search syntax: words, "phrases", -exclusions, or'),
    ],
    principal: Principal = Depends(require("knowledge:read")),
    mode: SearchMode = Query(default=SearchMode.hybrid),
    category: Annotated[OptText, Query(max_length=100)] = None,
    tags: Annotated[OptTextList, Query(max_length=50, description="Items must carry all of these tags")] = None,
    limit: int = Query(default=10, ge=1, le=MAX_SEARCH_LIMIT),
    offset: int = Query(default=0, ge=0, le=MAX_SEARCH_OFFSET),
) -> dict[str, Any]:
    """Search the knowledge base (full-text, semantic or hybrid) with highlighted snippets."""
    query = SearchQuery(q=q, mode=mode, category=category, tags=_tags(tags), limit=limit, offset=offset)
    result = await service.search_page(ctx, query)
    return ok(result, f"{len(result.items)} result(s)")


@router.post("/bulk", status_code=201, response_model=Envelope[BulkResult])
async def bulk_create(
    ctx: Ctx, body: BulkCreate, principal: Principal = Depends(require("knowledge:write"))
) -> dict[str, Any]:
    """Create up to 1,000 items at once; content already stored is skipped unless told otherwise."""
    result = await service.bulk_create(ctx, body, user=principal.username)
    return ok(result, f"{result.created} item(s) created, {result.skipped} skipped")


@router.get("", response_model=Envelope[ItemPage])
async def list_items(
    ctx: Ctx,
    principal: Principal = Depends(require("knowledge:read")),
    category: Annotated[OptText, Query(max_length=100)] = None,
    tags: Annotated[OptTextList, Query(max_length=50)] = None,
    limit: int = Query(default=20, ge=1, le=100),
    offset: OffsetQuery = 0,
) -> dict[str, Any]:
    """List items, newest first."""
    page = await service.list_items(ctx, category=category, tags=_tags(tags), limit=limit, offset=offset)
    return ok(page)


@router.post("", status_code=201, response_model=Envelope[KnowledgeItemOut])
async def create_item(
    ctx: Ctx, body: KnowledgeItemCreate, principal: Principal = Depends(require("knowledge:write"))
) -> dict[str, Any]:
    """Create an item (version 1)."""
    return ok(await service.create_item(ctx, body, user=principal.username), "Knowledge item created")


@router.get("/{item_id}", response_model=Envelope[KnowledgeItemOut])
async def get_item(
    ctx: Ctx, principal: Principal = Depends(require("knowledge:read")), item_id: int = ItemId
) -> dict[str, Any]:
    """One item."""
    return ok(await service.get_item(ctx, item_id))


@router.put("/{item_id}", response_model=Envelope[KnowledgeItemOut])
async def update_item(
    ctx: Ctx,
    body: KnowledgeItemUpdate,
    principal: Principal = Depends(require("knowledge:write")),
    item_id: int = ItemId,
) -> dict[str, Any]:
    """Update an item; the previous version is kept and ``version`` increments."""
    return ok(await service.update_item(ctx, item_id, body, user=principal.username), "Knowledge item updated")


@router.delete("/{item_id}", response_model=Envelope[ItemDeleted])
async def delete_item(
    ctx: Ctx, principal: Principal = Depends(require("knowledge:write")), item_id: int = ItemId
) -> dict[str, Any]:
    """Delete an item and its history."""
    await service.delete_item(ctx, item_id)
    return ok(ItemDeleted(id=item_id), "Knowledge item deleted")


@router.get("/{item_id}/versions", response_model=Envelope[list[KnowledgeVersionOut]])
async def list_versions(
    ctx: Ctx, principal: Principal = Depends(require("knowledge:read")), item_id: int = ItemId
) -> dict[str, Any]:
    """Every version of an item, the current one first."""
    return ok(await service.list_versions(ctx, item_id))


@router.get("/{item_id}/versions/{version}", response_model=Envelope[KnowledgeVersionOut])
async def get_version(
    ctx: Ctx,
    principal: Principal = Depends(require("knowledge:read")),
    item_id: int = ItemId,
    version: int = Path(ge=1, le=2**31 - 1),
) -> dict[str, Any]:
    """One version of an item."""
    return ok(await service.get_version(ctx, item_id, version))
