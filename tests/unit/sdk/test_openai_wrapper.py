"""OpenAIWrapper returns exactly what the client returns (sync, async, streaming) and records
one llm span per call; rollouts group calls; emit_reward rewards the right rollout."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from agentlightning import OpenAIWrapper, emit_reward
from agentlightning.sdk.models import AgentResources
from tests.fake_llm_server import FakeLLMServer
from tests.sdk_helpers import strip_ids
from tests.unit.sdk.conftest import Captured, link

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}]


def clients(llm: FakeLLMServer, captured: Captured) -> tuple[openai.OpenAI, OpenAIWrapper]:
    raw = openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
    return raw, OpenAIWrapper(
        openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0), client=captured.client
    )


def test_create_returns_what_the_client_returns_and_records_a_span(llm: FakeLLMServer, captured: Captured) -> None:
    raw, wrapped = clients(llm, captured)
    expected = raw.chat.completions.create(model="fake-model", messages=MESSAGES)
    got = wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert type(got) is type(expected)
    assert strip_ids(got.model_dump()) == strip_ids(expected.model_dump())

    (rollout,) = captured.rollouts().values()
    assert rollout["source"] == "sdk" and rollout["status"] == "completed"
    (span,) = rollout["spans"]
    assert span["kind"] == "llm" and span["status"] == "ok"
    assert span["input"]["messages"] == MESSAGES
    assert span["output"]["content"] == "Answer: hello there"
    assert span["model"] == "fake-model"
    assert span["prompt_tokens"] == got.usage.prompt_tokens
    assert span["completion_tokens"] == got.usage.completion_tokens
    assert span["latency_ms"] > 0
    assert span["attributes"]["response_id"] == got.id


def test_tool_calls_are_recorded(llm: FakeLLMServer, captured: Captured) -> None:
    _, wrapped = clients(llm, captured)
    got = wrapped.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "calculate: 2+3"}], tools=TOOLS
    )
    (span,) = captured.spans()
    assert got.choices[0].message.tool_calls
    assert span["output"]["tool_calls"][0]["function"]["name"] == "calculator"
    assert span["input"]["params"]["tools"] == TOOLS


def test_a_stream_yields_the_same_chunks_and_is_recorded_at_its_end(llm: FakeLLMServer, captured: Captured) -> None:
    raw, wrapped = clients(llm, captured)
    kwargs: dict[str, Any] = {
        "model": "fake-model",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    raw_stream = raw.chat.completions.create(**kwargs)
    expected = [strip_ids(c.model_dump()) for c in raw_stream]
    stream = wrapped.chat.completions.create(**kwargs)
    assert type(stream) is type(raw_stream)
    seen = []
    for chunk in stream:
        assert isinstance(chunk, openai.types.chat.ChatCompletionChunk)
        seen.append(strip_ids(chunk.model_dump()))
    assert seen == expected
    (span,) = captured.spans()
    assert span["output"]["content"] == "Answer: hello there"
    usage = expected[-1]["usage"]
    assert span["prompt_tokens"] == usage["prompt_tokens"] and span["completion_tokens"] == usage["completion_tokens"]
    assert span["attributes"]["stream"] is True


def test_a_stream_closed_early_is_recorded(llm: FakeLLMServer, captured: Captured) -> None:
    _, wrapped = clients(llm, captured)
    with wrapped.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True) as stream:
        next(iter(stream))
    (span,) = captured.spans()
    assert span["attributes"]["closed_early"] is True


def test_a_failing_call_raises_the_same_error_and_is_recorded(captured: Captured) -> None:
    with FakeLLMServer(fail_first=2) as failing:
        raw = openai.OpenAI(base_url=failing.base_url, api_key="test", max_retries=0)
        wrapped = OpenAIWrapper(
            openai.OpenAI(base_url=failing.base_url, api_key="test", max_retries=0), client=captured.client
        )
        with pytest.raises(openai.InternalServerError):
            raw.chat.completions.create(model="fake-model", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
    (rollout,) = captured.rollouts().values()
    assert rollout["status"] == "failed"
    assert rollout["spans"][0]["status"] == "error" and "InternalServerError" in rollout["spans"][0]["error"]


async def test_async_create_and_stream_return_what_the_client_returns(llm: FakeLLMServer, captured: Captured) -> None:
    raw = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
    wrapped = OpenAIWrapper(
        openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0), client=captured.client
    )
    expected = await raw.chat.completions.create(model="fake-model", messages=MESSAGES)
    got = await wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert strip_ids(got.model_dump()) == strip_ids(expected.model_dump())

    raw_stream = await raw.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    expected_chunks = [strip_ids(c.model_dump()) async for c in raw_stream]
    stream = await wrapped.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    assert type(stream) is type(raw_stream)
    assert [strip_ids(c.model_dump()) async for c in stream] == expected_chunks

    spans = captured.spans()
    assert [s["output"]["content"] for s in spans] == ["Answer: hello there"] * 2
    await raw.close()


def test_other_attributes_pass_through(llm: FakeLLMServer, captured: Captured) -> None:
    raw, wrapped = clients(llm, captured)
    assert wrapped.base_url == raw.base_url
    assert [m.id for m in wrapped.models.list()] == ["fake-model"]
    response = wrapped.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)
    assert response.parse().choices[0].message.content == "Answer: hello there"


def test_a_rollout_groups_calls_and_emit_reward_rewards_it(llm: FakeLLMServer, captured: Captured) -> None:
    _, wrapped = clients(llm, captured)
    with captured.client.rollout(metadata={"task_type": "greeting"}) as rollout:
        wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
        wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert emit_reward(0.75) == rollout.id
    wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
    single = emit_reward(1.0, name="thumbs-up")
    rollouts = captured.rollouts()
    assert len(rollouts) == 2
    grouped = rollouts[rollout.id]
    assert len(grouped["spans"]) == 2 and grouped["status"] == "completed"
    assert grouped["rewards"] == [{"value": 0.75}]
    assert grouped["metadata"] == {"task_type": "greeting"}
    assert single is not None and single != rollout.id
    assert rollouts[single]["rewards"] == [{"value": 1.0, "name": "thumbs-up"}]
    assert len(rollouts[single]["spans"]) == 1


async def test_a_decorated_async_function_is_one_rollout_per_call(llm: FakeLLMServer, captured: Captured) -> None:
    wrapped = OpenAIWrapper(openai.AsyncOpenAI(base_url=llm.base_url, api_key="test"), client=captured.client)

    @captured.client.rollout()
    async def agent(question: str) -> str:
        reply = await wrapped.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": question}]
        )
        emit_reward(0.5)
        return str(reply.choices[0].message.content)

    assert await agent("one") == "Answer: one"
    assert await agent("two") == "Answer: two"
    rollouts = list(captured.rollouts().values())
    assert [r["output"] for r in rollouts] == ["Answer: one", "Answer: two"]
    assert all(len(r["spans"]) == 1 and r["rewards"] == [{"value": 0.5}] for r in rollouts)


def test_a_failing_block_marks_its_rollout_failed(captured: Captured) -> None:
    with pytest.raises(RuntimeError), captured.client.rollout() as rollout:
        raise RuntimeError("agent bug")
    assert captured.rollouts()[rollout.id]["status"] == "failed"


def test_emit_reward_refuses_non_finite_values_and_needs_a_rollout() -> None:
    with pytest.raises(ValueError):
        emit_reward(float("nan"))
    import contextvars

    assert contextvars.Context().run(emit_reward, 1.0) is None  # nothing to reward in a fresh context


def test_promoted_resources_replace_the_system_message_model_and_temperature(
    llm: FakeLLMServer, captured: Captured
) -> None:
    _, wrapped = clients(llm, captured)
    link_resources = AgentResources(
        agent_id=1, system_prompt="Promoted prompt.", model="promoted-model", temperature=0.1
    )
    wrapped._al_link = link(captured.client, link_resources)
    messages = [dict(m) for m in MESSAGES]
    wrapped.chat.completions.create(model="fake-model", messages=messages, temperature=0.9)
    sent = llm.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Promoted prompt."}
    assert sent["model"] == "promoted-model" and sent["temperature"] == 0.1
    assert messages == MESSAGES  # the caller's list is left alone
    wrapped.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert llm.requests[-1]["messages"][0] == {"role": "system", "content": "Promoted prompt."}
    assert captured.spans()[0]["model"] == "promoted-model"
