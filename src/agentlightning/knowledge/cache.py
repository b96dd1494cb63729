"""Search result caching under the spec's ``knowledge:search:{query_hash}`` key (30 minutes).

Invalidation is by generation tokens rather than by scanning keys: the query hash includes the
current token of the scope the search reads, and a write replaces the tokens of every scope it can
change, so stale entries are simply never looked up again and expire on their own. A search with
a ``category`` filter reads only that category's scope; any other search reads the ``all`` scope.
A write to an item touches ``all`` plus its old and new categories, so a write in one category
leaves cached searches filtered to other categories intact.

Tokens are random (not counters), so a token lost to Redis eviction or restart can never come back
and revive old entries. With Redis down the cache is bypassed (the core cache never raises).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from agentlightning.knowledge.schemas import SearchQuery, SearchResult
from agentlightning.storage import cache_keys
from agentlightning.storage.cache import Cache

ALL_SCOPE = "all"


def _scope(query: SearchQuery) -> str:
    return f"category:{query.category}" if query.category else ALL_SCOPE


async def _token(cache: Cache, scope: str) -> str | None:
    key = cache_keys.knowledge_search_generation(scope)
    token = await cache.get(key)
    if token is None:
        token = uuid.uuid4().hex
        await cache.set(key, token)
        if not cache.healthy:
            return None
    return token


async def cache_key(cache: Cache, query: SearchQuery) -> str | None:
    """The cache key of ``query`` at the current generation, or None when caching is off."""
    token = await _token(cache, _scope(query))
    if token is None:
        return None
    return cache_keys.knowledge_search(cache_keys.stable_hash([query.model_dump(mode="json"), token]))


async def get(cache: Cache, key: str) -> SearchResult | None:
    """A cached result (counted in the ``knowledge_search`` hit-rate namespace)."""
    raw = await cache.get_json(key, stat="knowledge_search")
    return SearchResult.model_validate(raw) if raw is not None else None


async def put(cache: Cache, key: str, result: SearchResult) -> None:
    """Cache ``result`` for the spec's 30 minutes."""
    await cache.set_json(key, result.model_dump(mode="json"), cache_keys.KNOWLEDGE_SEARCH_TTL)


async def invalidate(cache: Cache, categories: Iterable[str | None]) -> None:
    """Make every cached search that a write to items in ``categories`` could change unreachable."""
    scopes = {ALL_SCOPE} | {f"category:{c}" for c in categories if c}
    for scope in scopes:
        await cache.set(cache_keys.knowledge_search_generation(scope), uuid.uuid4().hex)


async def invalidate_all(cache: Cache) -> None:
    """Drop every cached search (after bulk imports and deletions of many categories)."""
    await cache.delete_prefix(cache_keys.KNOWLEDGE_SEARCH_GENERATION_PREFIX)
    await cache.delete_prefix(cache_keys.KNOWLEDGE_SEARCH_PREFIX)
