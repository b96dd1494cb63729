"""A platform that is down or hangs never disturbs or slows the wrapped agent, and the SDK's
memory stays bounded while it lasts."""

from __future__ import annotations

import asyncio
import time

import openai

from agentlightning import Client, LangChainWrapper, OpenAIWrapper
from tests.fake_llm_server import FakeLLMServer
from tests.sdk_helpers import HangingPlatform, dead_url

MESSAGES = [{"role": "user", "content": "hello"}]


def timed(fn: object, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return time.perf_counter() - started


def test_a_hanging_platform_neither_blocks_nor_slows_the_calls(llm: FakeLLMServer) -> None:
    with HangingPlatform() as platform:
        client = Client(platform.url, timeout=60, recorder_options={"max_queue": 50, "batch_interval": 0.0})
        raw = openai.OpenAI(base_url=llm.base_url, api_key="test")
        wrapped = OpenAIWrapper(openai.OpenAI(base_url=llm.base_url, api_key="test"), client=client)
        # Enabling RL training against it gives up waiting after `wait` and changes nothing.
        started = time.monotonic()
        wrapped.enable_rl_training("hung-agent", wait=0.2)
        assert time.monotonic() - started < 10
        wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert platform.hit.wait(30), "the recorder never reached the platform"
        # From here the recorder's thread is stuck in a request that will not be answered for
        # as long as the platform is up: every call below overlaps the outage.
        raw_s = timed(lambda: raw.chat.completions.create(model="fake-model", messages=MESSAGES), 40)
        wrapped_s = timed(lambda: wrapped.chat.completions.create(model="fake-model", messages=MESSAGES), 200)
        assert wrapped_s < 5 * raw_s + 5.0, (wrapped_s, raw_s)
        assert llm.requests[-1]["messages"] == MESSAGES  # nothing applied: no resources known
        stats = client.recorder.stats()
        assert stats["sent"] == 0 and not platform.release.is_set()
        assert stats["queued"] <= 50  # bounded: the oldest were dropped and counted
        assert stats["dropped"] >= 200 - 50 - 1
        started = time.monotonic()
        assert client.flush(0.2) is False
        assert time.monotonic() - started < 5
        wrapped.disable_rl_training()
    client.recorder.close(0.1)


def test_nothing_listening_changes_nothing_for_the_agent(llm: FakeLLMServer) -> None:
    client = Client(dead_url(), recorder_options={"max_attempts": 2, "backoff_base": 0.01, "batch_interval": 0.0})
    raw = openai.OpenAI(base_url=llm.base_url, api_key="test")
    wrapped = LangChainWrapper(
        __import__("langchain_openai").ChatOpenAI(model="fake-model", base_url=llm.base_url, api_key="test"),
        client=client,
    ).enable_rl_training("down-agent", wait=5)
    assert wrapped.agent_id is None and wrapped.resources is None
    assert (
        wrapped.invoke("hello").content
        == raw.chat.completions.create(model="fake-model", messages=MESSAGES).choices[0].message.content
    )
    assert client.flush(30)  # given up after max_attempts, not stuck
    assert client.recorder.stats()["dropped"] >= 1
    client.close(0.1)


async def test_async_calls_are_not_slowed_by_a_hanging_platform(llm: FakeLLMServer) -> None:
    with HangingPlatform() as platform:
        client = Client(platform.url, timeout=60, recorder_options={"batch_interval": 0.0})
        wrapped = OpenAIWrapper(openai.AsyncOpenAI(base_url=llm.base_url, api_key="test"), client=client)
        await wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert await asyncio.to_thread(platform.hit.wait, 30)
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(wrapped.chat.completions.create(model="fake-model", messages=MESSAGES) for _ in range(20))
        )
        assert all(r.choices[0].message.content == "Answer: hello" for r in replies)
        assert time.perf_counter() - started < 30
        assert client.recorder.stats()["sent"] == 0
    client.recorder.close(0.1)
