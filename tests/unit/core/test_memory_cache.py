"""The in-process cache honours TTLs, prefixes and hit accounting."""

import asyncio

from agentlightning.storage import cache_keys
from agentlightning.storage.cache import MemoryCache


async def test_ttl_and_hit_rate() -> None:
    cache = MemoryCache()
    await cache.set_json("agent:response:1:abc", {"answer": 42}, ttl=1)
    assert await cache.get_json("agent:response:1:abc", stat="agent_response") == {"answer": 42}
    assert await cache.get("agent:response:1:missing", stat="agent_response") is None
    assert cache.hit_rate("agent_response") == 0.5
    await asyncio.sleep(1.05)
    assert await cache.get("agent:response:1:abc") is None


async def test_delete_prefix_and_incr() -> None:
    cache = MemoryCache()
    for i in range(3):
        await cache.set(cache_keys.knowledge_search(f"q{i}"), "[]", cache_keys.KNOWLEDGE_SEARCH_TTL)
    await cache.set("system:config", "{}")
    assert await cache.delete_prefix(cache_keys.KNOWLEDGE_SEARCH_PREFIX) == 3
    assert await cache.exists("system:config")
    assert await cache.incr("counter") == 1 and await cache.incr("counter") == 2


def test_spec_key_names() -> None:
    assert cache_keys.agent_response(5, "h") == "agent:response:5:h"
    assert cache_keys.agent_status(5) == "agent:status:5"
    assert cache_keys.knowledge_search("q") == "knowledge:search:q"
    assert cache_keys.session("s") == "session:s"
    assert cache_keys.jwt_blacklist("t") == "jwt:blacklist:t"
    assert (cache_keys.AGENT_RESPONSE_TTL, cache_keys.SYSTEM_CONFIG_TTL) == (3600, 86400)
    assert (cache_keys.AGENT_STATUS_TTL, cache_keys.KNOWLEDGE_SEARCH_TTL, cache_keys.SESSION_TTL) == (300, 1800, 86400)
