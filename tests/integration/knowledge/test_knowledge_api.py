"""The knowledge endpoints on both databases: CRUD, versions, search ranking, cache invalidation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from agentlightning.core.context import AppContext
from agentlightning.knowledge.search.fulltext import fulltext_ranking
from agentlightning.knowledge.search.vectors import get_backend
from agentlightning.observability.metrics import REGISTRY

BASE = "/api/v2/knowledge"


@pytest.fixture
async def dev(login: Callable[[str], Awaitable[dict[str, str]]]) -> dict[str, str]:
    """Headers of a developer (knowledge:*)."""
    return await login("developer")


def _cat() -> str:
    """A category private to one test, so tests sharing a database don't see each other's items."""
    return f"kb-{uuid.uuid4().hex[:10]}"


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=fields, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def _search(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get(f"{BASE}/search", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_crud_and_version_history(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    category = _cat()
    item = await _create(
        client,
        dev,
        title="Redis eviction",
        content="Redis evicts keys with allkeys-lru.",
        category=category,
        tags=["redis", "cache"],
        metadata={"source": "ops"},
    )
    assert item["version"] == 1 and item["tags"] == ["cache", "redis"] and item["created_by"]

    got = (await client.get(f"{BASE}/{item['id']}", headers=dev)).json()["data"]
    assert got["content"] == "Redis evicts keys with allkeys-lru."

    for n, content in enumerate(["Redis evicts keys by LRU.", "Redis evicts keys by LFU too."], start=2):
        response = await client.put(f"{BASE}/{item['id']}", json={"content": content}, headers=dev)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["version"] == n

    # A no-op update keeps the version.
    same = await client.put(f"{BASE}/{item['id']}", json={"content": "Redis evicts keys by LFU too."}, headers=dev)
    assert same.json()["data"]["version"] == 3

    versions = (await client.get(f"{BASE}/{item['id']}/versions", headers=dev)).json()["data"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["current"] and versions[2]["content"] == "Redis evicts keys with allkeys-lru."
    v1 = (await client.get(f"{BASE}/{item['id']}/versions/1", headers=dev)).json()["data"]
    assert v1["content"] == "Redis evicts keys with allkeys-lru." and v1["valid_to"]

    conflict = await client.put(f"{BASE}/{item['id']}", json={"title": "x", "expected_version": 1}, headers=dev)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "VERSION_CONFLICT"

    listed = (await client.get(BASE, params={"category": category}, headers=dev)).json()["data"]
    assert listed["total"] == 1 and listed["items"][0]["id"] == item["id"]

    assert (await client.delete(f"{BASE}/{item['id']}", headers=dev)).status_code == 200
    missing = await client.get(f"{BASE}/{item['id']}", headers=dev)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "KNOWLEDGE_ITEM_NOT_FOUND"
    missing_version = await client.get(f"{BASE}/{item['id']}/versions/1", headers=dev)
    assert missing_version.status_code == 404


async def test_validation_errors_use_the_envelope(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    response = await client.post(BASE, json={"title": "", "content": "x"}, headers=dev)
    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    bad_mode = await client.get(f"{BASE}/search", params={"q": "x", "mode": "magic"}, headers=dev)
    assert bad_mode.status_code == 422
    no_version = await client.get(f"{BASE}/{2**31 - 1}/versions/9", headers=dev)
    assert no_version.status_code == 404


async def test_permissions(client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]) -> None:
    user = await login("user")
    assert (await client.post(BASE, json={"title": "t", "content": "c"}, headers=user)).status_code == 403
    assert (await client.get(f"{BASE}/search", params={"q": "t"}, headers=user)).status_code == 200
    assert (await client.get(f"{BASE}/search", params={"q": "t"})).status_code == 401


async def test_fulltext_ranking_phrases_exclusions_and_filters(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    category, other = _cat(), _cat()
    in_title = await _create(
        client,
        dev,
        title="Connection pooling guide",
        content="How the pool hands out sockets.",
        category=category,
        tags=["postgres", "ops"],
    )
    in_body = await _create(
        client,
        dev,
        title="Database notes",
        content="Tune connection pooling when workers grow; pooling matters.",
        category=category,
        tags=["postgres"],
    )
    scrambled = await _create(
        client,
        dev,
        title="Pooling of connection handles",
        content="Not about the phrase in order: pooling, connection.",
        category=category,
        tags=["mysql"],
    )
    elsewhere = await _create(
        client, dev, title="Connection pooling", content="Same words, other category.", category=other
    )

    hits = (await _search(client, dev, q="connection pooling", mode="fulltext", category=category))["items"]
    ids = [h["id"] for h in hits]
    assert set(ids) == {in_title["id"], in_body["id"], scrambled["id"]}
    assert elsewhere["id"] not in ids
    assert ids.index(in_title["id"]) < ids.index(in_body["id"]), "a title match outranks a body match"
    assert all(h["score"] > 0 for h in hits)
    assert "<mark>" in hits[ids.index(in_body["id"])]["snippet"]

    phrase = (await _search(client, dev, q='"connection pooling"', mode="fulltext", category=category))["items"]
    assert {h["id"] for h in phrase} == {in_title["id"], in_body["id"]}

    excluded = await _search(client, dev, q='connection -"phrase in order"', mode="fulltext", category=category)
    assert scrambled["id"] not in {h["id"] for h in excluded["items"]}
    assert in_title["id"] in {h["id"] for h in excluded["items"]}
    excluded_word = (await _search(client, dev, q="pooling -sockets", mode="fulltext", category=category))["items"]
    assert in_title["id"] not in {h["id"] for h in excluded_word}
    assert in_body["id"] in {h["id"] for h in excluded_word}

    tagged = await _search(client, dev, q="connection", mode="fulltext", category=category, tags="postgres,ops")
    assert [h["id"] for h in tagged["items"]] == [in_title["id"]]
    either = (await _search(client, dev, q="sockets or workers", mode="fulltext", category=category))["items"]
    assert {h["id"] for h in either} == {in_title["id"], in_body["id"]}

    page = await _search(client, dev, q="connection", mode="fulltext", category=category, limit=2)
    assert len(page["items"]) == 2 and page["has_more"] is True
    rest = await _search(client, dev, q="connection", mode="fulltext", category=category, limit=2, offset=2)
    assert len(rest["items"]) == 1 and rest["has_more"] is False


async def test_semantic_and_hybrid_find_paraphrases(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    category = _cat()
    target = await _create(
        client,
        dev,
        title="Recovering a forgotten password",
        content="Users who cannot sign in can request a reset link by e-mail and choose new credentials.",
        category=category,
    )
    await _create(
        client,
        dev,
        title="Quarterly revenue",
        content="Sales grew eleven percent in the fourth quarter.",
        category=category,
    )
    await _create(
        client, dev, title="GPU drivers", content="Install the CUDA toolkit before training models.", category=category
    )

    query = "I lost my login, how do I get back into my account"
    lexical = (await _search(client, dev, q=query, mode="fulltext", category=category))["items"]
    assert target["id"] not in {h["id"] for h in lexical}
    semantic = (await _search(client, dev, q=query, mode="semantic", category=category))["items"]
    assert semantic[0]["id"] == target["id"] and semantic[0]["ranks"] == {"semantic": 1}
    hybrid = (await _search(client, dev, q=query, mode="hybrid", category=category))["items"]
    assert hybrid[0]["id"] == target["id"]

    # An update re-embeds: the item now answers a different question.
    await client.put(
        f"{BASE}/{target['id']}",
        json={"title": "Baking bread", "content": "Knead the dough and let it rise."},
        headers=dev,
    )
    again = (await _search(client, dev, q="how to make a loaf of bread", mode="semantic", category=category))["items"]
    assert again[0]["id"] == target["id"]


async def test_search_cache_hits_and_invalidation(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    category, other = _cat(), _cat()
    await _create(
        client, dev, title="Kafka retention", content="Kafka keeps segments for seven days.", category=category
    )
    first = await _search(client, dev, q="kafka", mode="fulltext", category=category)
    assert first["cached"] is False and len(first["items"]) == 1
    second = await _search(client, dev, q="kafka", mode="fulltext", category=category)
    assert second["cached"] is True and second["items"] == first["items"]

    # A write in another category leaves this category's cached searches alone...
    await _create(client, dev, title="Kafka elsewhere", content="kafka", category=other)
    assert (await _search(client, dev, q="kafka", mode="fulltext", category=category))["cached"] is True
    # ...but invalidates unfiltered searches, which it could change.
    unfiltered = await _search(client, dev, q="kafka retention segments", mode="fulltext")
    await _create(client, dev, title="Kafka retention again", content="retention segments", category=other)
    fresh = await _search(client, dev, q="kafka retention segments", mode="fulltext")
    assert fresh["cached"] is False and len(fresh["items"]) == len(unfiltered["items"]) + 1

    # A write in the category invalidates, and the new item shows up.
    created = await _create(
        client, dev, title="Kafka compaction", content="Kafka compacts topics by key.", category=category
    )
    after = await _search(client, dev, q="kafka", mode="fulltext", category=category)
    assert after["cached"] is False and created["id"] in {h["id"] for h in after["items"]}

    # Updating and deleting invalidate too.
    await client.put(f"{BASE}/{created['id']}", json={"content": "Nothing about streams any more."}, headers=dev)
    await client.put(f"{BASE}/{created['id']}", json={"title": "Compaction"}, headers=dev)
    updated = await _search(client, dev, q="kafka", mode="fulltext", category=category)
    assert updated["cached"] is False and created["id"] not in {h["id"] for h in updated["items"]}
    cached_again = await _search(client, dev, q="kafka", mode="fulltext", category=category)
    assert cached_again["cached"] is True
    await client.delete(f"{BASE}/{updated['items'][0]['id']}", headers=dev)
    gone = await _search(client, dev, q="kafka", mode="fulltext", category=category)
    assert gone["cached"] is False and gone["items"] == []


async def test_bulk_endpoint_skips_existing(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    category = _cat()
    items = [
        {"title": f"Runbook {i}", "content": f"Step {i}: restart the worker pool.", "category": category}
        for i in range(5)
    ]
    first = await client.post(f"{BASE}/bulk", json={"items": items}, headers=dev)
    assert first.status_code == 201, first.text
    assert first.json()["data"]["created"] == 5 and first.json()["data"]["embedded"] == 5
    again = await client.post(
        f"{BASE}/bulk", json={"items": items + [{**items[0], "title": "Runbook new"}]}, headers=dev
    )
    assert again.json()["data"]["created"] == 1 and again.json()["data"]["skipped"] == 5
    found = await _search(client, dev, q="restart worker pool", mode="hybrid", category=category, limit=10)
    assert len(found["items"]) == 6
    too_many = await client.post(f"{BASE}/bulk", json={"items": items * 201}, headers=dev)
    assert too_many.status_code == 422


async def test_semantic_search_uses_the_database_vector_backend(
    client: httpx.AsyncClient, dev: dict[str, str], ctx: AppContext
) -> None:
    """SQLite answers with sqlite-vec (pysqlite3 driver), PostgreSQL without pgvector with usearch."""
    category = _cat()
    target = await _create(
        client, dev, title="Rotating TLS certificates", content="Renew certs before expiry.", category=category
    )
    await _create(client, dev, title="Lunch menu", content="Soup and bread on Fridays.", category=category)
    hits = (await _search(client, dev, q="renewing https keys", mode="semantic", category=category))["items"]
    assert hits[0]["id"] == target["id"]
    async with ctx.db.session() as session:
        backend = await get_backend(session)
    assert backend.name == ("sqlite-vec" if ctx.db.dialect == "sqlite" else "usearch")


async def test_search_metrics(client: httpx.AsyncClient, dev: dict[str, str]) -> None:
    """knowledge_search_total counts misses then hits; the duration histogram sees only misses."""
    category = _cat()
    await _create(client, dev, title="Metric probe", content="Histogram buckets for latency.", category=category)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    misses = sample("knowledge_search_total", mode="fulltext", cache="miss") + sample(
        "knowledge_search_total", mode="fulltext", cache="bypass"
    )
    hits = sample("knowledge_search_total", mode="fulltext", cache="hit")
    timed = sample("knowledge_search_duration_seconds_count", mode="fulltext")
    await _search(client, dev, q="histogram buckets", mode="fulltext", category=category)
    await _search(client, dev, q="histogram buckets", mode="fulltext", category=category)
    after_misses = sample("knowledge_search_total", mode="fulltext", cache="miss") + sample(
        "knowledge_search_total", mode="fulltext", cache="bypass"
    )
    assert after_misses == misses + 1
    assert sample("knowledge_search_total", mode="fulltext", cache="hit") == hits + 1
    assert sample("knowledge_search_duration_seconds_count", mode="fulltext") == timed + 1
    body = (await client.get("/metrics")).text
    assert "knowledge_search_duration_seconds_bucket" in body and "knowledge_search_total" in body


async def test_fulltext_ranks_a_bounded_candidate_set(
    client: httpx.AsyncClient, dev: dict[str, str], ctx: AppContext
) -> None:
    """PostgreSQL ranks at most ``candidates`` matches and says so; within the bound the order is exact."""
    category = _cat()
    strong = await _create(
        client, dev, title="Ferry timetable", content="ferry ferry ferry schedule", category=category
    )
    for i in range(5):
        await _create(
            client, dev, title=f"Note {i}", content=f"A ferry is mentioned once in note {i}.", category=category
        )
    async with ctx.db.session() as session:
        exact = await fulltext_ranking(session, "ferry", category=category, tags=[], limit=3)
        bounded = await fulltext_ranking(session, "ferry", category=category, tags=[], limit=3, candidates=4)
        enough = await fulltext_ranking(session, "ferry", category=category, tags=[], limit=3, candidates=6)
    assert exact.ranked[0][0] == strong["id"] and not exact.bounded
    assert not enough.bounded and enough.ranked == exact.ranked
    if ctx.db.dialect == "postgresql":
        assert bounded.bounded and len(bounded.ranked) == 3
    else:  # FTS5 ranks every match with BM25 (no bound needed at this scale)
        assert not bounded.bounded and bounded.ranked == exact.ranked
    page = await _search(client, dev, q="ferry", mode="fulltext", category=category, limit=2)
    assert page["ranking_bounded"] is False and page["has_more"] is True


async def test_rank_candidates_setting_reaches_the_api(settings_factory, backend: str) -> None:  # type: ignore[no-untyped-def]
    """Operators trade latency for completeness with KNOWLEDGE_RANK_CANDIDATES."""
    from asgi_lifespan import LifespanManager

    from agentlightning.api.app import create_app
    from tests.helpers import login_as

    app = create_app(settings_factory(knowledge_rank_candidates=10))
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            headers = await login_as(client, app, "developer")
            category = _cat()
            for i in range(12):
                await _create(
                    client, headers, title=f"Buoy {i}", content=f"A buoy report number {i}.", category=category
                )
            page = await _search(client, headers, q="buoy", mode="fulltext", category=category, limit=5)
    # Twelve matches, ten scored: PostgreSQL says the ranking was bounded; FTS5 ranks all with BM25.
    assert page["ranking_bounded"] is (backend == "postgres")
    assert len(page["items"]) == 5
