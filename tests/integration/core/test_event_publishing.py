"""Events published together travel together, on a real Redis: the events of concurrent callers of
one process go out as one message per channel, and every other process receives each of them, in
order, exactly once (a lone event is still a plain message)."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from agentlightning.storage.events import RedisEventBus, stored_event
from tests.helpers import unique


async def test_concurrent_announces_share_messages_and_arrive_in_order(redis_url: str) -> None:
    prefix = unique("pubtest")
    sender, receiver = RedisEventBus(redis_url, prefix), RedisEventBus(redis_url, prefix)
    await receiver.start()
    try:
        async with receiver.subscribe() as sub:
            events = [stored_event(None, "tasks", "task_completed", {"task_id": i}) for i in range(30)]
            # thirty callers at once (the outcomes of a batch), then a lone one and a batch of another topic
            await asyncio.gather(*(sender.announce([e]) for e in events))
            await sender.announce([stored_event(None, "tasks", "task_created", {"task_id": 99})])
            await sender.announce([stored_event(None, "system", "maintenance", {"n": n}) for n in range(3)])
            got = [await sub.get(timeout=30) for _ in range(34)]
    finally:
        await sender.close()
        await receiver.close()
    tasks = [(e["event"], e["data"]["task_id"]) for e in got if e["topic"] == "tasks"]
    assert tasks == [("task_completed", i) for i in range(30)] + [("task_created", 99)]
    assert [e["data"]["n"] for e in got if e["topic"] == "system"] == [0, 1, 2]
    assert sub.queue.empty()  # nothing twice
    assert sender.publisher.events == 34 and sender.publisher.messages <= 5  # 34 events, a handful of messages


async def test_a_lone_event_is_a_plain_message_for_any_reader(redis_url: str) -> None:
    prefix = unique("plain")
    bus = RedisEventBus(redis_url, prefix)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(bus.channel("tasks"))
    try:
        await bus.announce([stored_event(7, "tasks", "task_created", {"task_id": 1})])
        message = None
        async with asyncio.timeout(30):
            while message is None:
                message = await pubsub.get_message(timeout=1.0)
    finally:
        await pubsub.aclose()
        await raw.aclose()
        await bus.close()
    assert message is not None and json.loads(message["data"])["id"] == 7  # an object, not a list


async def test_an_unreachable_redis_fails_no_caller() -> None:
    """Publishing never fails its caller: the stored events reach subscribers through the tailer."""
    bus = RedisEventBus("redis://127.0.0.1:1/0", unique("gone"))
    try:
        await asyncio.gather(*(bus.announce([stored_event(i, "tasks", "task_created", {})]) for i in range(3)))
    finally:
        await bus.close()
    assert bus.publisher.events == 0
