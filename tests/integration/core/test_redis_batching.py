"""Redis commands of concurrent callers share a pipeline, on a real Redis: each caller gets its own
reply or error, a refused command fails alone, an unreachable Redis fails every caller, and a
caller cancelled before its command was sent takes it back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from agentlightning.storage.redis_batching import CommandBatcher
from tests.helpers import free_port, unique


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield redis
    await redis.aclose()


async def test_concurrent_commands_share_round_trips_and_each_gets_its_reply(client: aioredis.Redis) -> None:
    batcher = CommandBatcher(client)
    prefix = unique("batch")
    stored = await asyncio.gather(*(batcher.execute("SET", f"{prefix}:{i}", f"value {i}", "EX", 60) for i in range(40)))
    assert stored == [True] * 40
    values = await asyncio.gather(*(batcher.execute("GET", f"{prefix}:{i}") for i in range(40)))
    assert values == [f"value {i}" for i in range(40)]
    assert batcher.commands == 80 and batcher.round_trips <= 4  # one lone command, then the rest together
    published = await batcher.submit_many([("PUBLISH", f"{prefix}:channel", str(i)) for i in range(5)])
    assert published == [0] * 5  # in order, one reply each (nobody subscribed)


async def test_a_refused_command_fails_alone(client: aioredis.Redis) -> None:
    batcher = CommandBatcher(client)
    key = unique("text")
    await client.set(key, "not a number", ex=60)
    results = await asyncio.gather(
        batcher.execute("GET", key),
        batcher.execute("INCR", key),
        batcher.execute("EXISTS", key),
        return_exceptions=True,
    )
    assert results[0] == "not a number" and results[2] == 1
    assert isinstance(results[1], ResponseError) and "not an integer" in str(results[1])
    assert await client.get(key) == "not a number"


async def test_an_unreachable_redis_fails_every_caller_at_once() -> None:
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1.0)
    batcher = CommandBatcher(redis)
    try:
        results = await asyncio.gather(*(batcher.execute("GET", f"k{i}") for i in range(5)), return_exceptions=True)
    finally:
        await redis.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results


async def test_a_caller_cancelled_before_sending_takes_its_command_back(client: aioredis.Redis) -> None:
    batcher = CommandBatcher(client)
    taken_back, kept = unique("taken-back"), unique("kept")
    first = asyncio.create_task(batcher.execute("SET", taken_back, "1", "EX", 60))
    second = asyncio.create_task(batcher.execute("SET", kept, "1", "EX", 60))
    await asyncio.sleep(0)  # both queued; the pipeline has not gone out yet
    first.cancel()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await client.get(taken_back) is None and await client.get(kept) == "1"
