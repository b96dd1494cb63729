"""LangChainWrapper (langchain-core 1.x, langchain-openai's ChatOpenAI on the scripted model):
the same results as the unwrapped chain, llm and tool spans, the chat history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableGenerator, RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from agentlightning import LangChainWrapper, emit_reward
from agentlightning.sdk.models import AgentResources
from tests.fake_llm_server import FakeLLMServer
from tests.sdk_helpers import strip_ids
from tests.unit.sdk.conftest import Captured, link


def model(llm: FakeLLMServer) -> ChatOpenAI:
    return ChatOpenAI(model="fake-model", base_url=llm.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]


def prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history", optional=True), ("human", "{input}")]
    )


def dump(message: Any) -> Any:
    return strip_ids(message.model_dump())


def test_invoke_stream_and_batch_return_what_the_chain_returns(llm: FakeLLMServer, captured: Captured) -> None:
    chain = prompt() | model(llm)
    wrapped = LangChainWrapper(model(llm), prompt(), client=captured.client)
    assert dump(wrapped.invoke({"input": "hi"})) == dump(chain.invoke({"input": "hi"}))
    assert [dump(c) for c in wrapped.stream({"input": "two words"})] == [
        dump(c) for c in chain.stream({"input": "two words"})
    ]
    assert [dump(m) for m in wrapped.batch([{"input": "a"}, {"input": "b"}])] == [
        dump(m) for m in chain.batch([{"input": "a"}, {"input": "b"}])
    ]
    rollouts = list(captured.rollouts().values())
    assert len(rollouts) == 4  # invoke, stream, and one per batch input
    spans = [r["spans"][0] for r in rollouts]
    assert [s["output"]["content"] for s in spans] == ["Answer: hi", "Answer: two words", "Answer: a", "Answer: b"]
    first = spans[0]
    assert first["kind"] == "llm" and first["model"] == "fake-model"
    assert first["input"]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert first["prompt_tokens"] and first["completion_tokens"]


async def test_ainvoke_and_astream_return_what_the_chain_returns(llm: FakeLLMServer, captured: Captured) -> None:
    chain = prompt() | model(llm)
    wrapped = LangChainWrapper(model(llm), prompt(), client=captured.client)
    assert dump(await wrapped.ainvoke({"input": "hi"})) == dump(await chain.ainvoke({"input": "hi"}))
    got = [dump(c) async for c in wrapped.astream({"input": "x y"})]
    assert got == [dump(c) async for c in chain.astream({"input": "x y"})]
    assert dump((await wrapped.abatch([{"input": "a"}]))[0]) == dump((await chain.abatch([{"input": "a"}]))[0])
    assert len(captured.spans()) == 3


def test_memory_feeds_the_history_and_records_each_turn(llm: FakeLLMServer, captured: Captured) -> None:
    memory = InMemoryChatMessageHistory()
    wrapped = LangChainWrapper(model(llm), prompt(), memory, client=captured.client)
    wrapped.invoke({"input": "first"})
    wrapped.invoke({"input": "second"})
    assert [m.content for m in memory.messages] == ["first", "Answer: first", "second", "Answer: second"]
    assert [m["content"] for m in llm.requests[-1]["messages"]] == ["Be brief.", "first", "Answer: first", "second"]

    bare = LangChainWrapper(model(llm), memory=InMemoryChatMessageHistory(), client=captured.client)
    bare.invoke("one")
    bare.invoke("two")
    assert [m["content"] for m in llm.requests[-1]["messages"]] == ["one", "Answer: one", "two"]


def test_tool_calls_inside_the_wrapped_runnable_are_tool_spans(llm: FakeLLMServer, captured: Captured) -> None:
    @tool
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return str(eval(expression, {"__builtins__": {}}))  # the test's own fixed input

    bound = model(llm).bind_tools([calculator])

    def run_tools(message: AIMessage) -> str:
        return "; ".join(str(calculator.invoke(call["args"])) for call in message.tool_calls)

    agent = bound | RunnableLambda(run_tools)
    wrapped = LangChainWrapper(agent, client=captured.client)
    with captured.client.rollout() as rollout:
        assert wrapped.invoke("calculate: 2+3") == agent.invoke("calculate: 2+3") == "5"
        emit_reward(1.0)
    spans = captured.rollouts()[rollout.id]["spans"]
    assert [s["kind"] for s in spans] == ["llm", "tool"]
    assert spans[0]["output"]["tool_calls"][0]["name"] == "calculator"
    assert spans[1]["name"] == "calculator" and spans[1]["output"] == "5"


def test_promoted_resources_reach_the_model(llm: FakeLLMServer, captured: Captured) -> None:
    wrapped = LangChainWrapper(model(llm), prompt(), client=captured.client)
    resources = AgentResources(agent_id=1, system_prompt="Promoted.", model="promoted-model", temperature=0.3)
    wrapped._al_link = link(captured.client, resources)
    wrapped.invoke({"input": "hi"})
    sent = llm.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Promoted."}
    assert sent["model"] == "promoted-model" and sent["temperature"] == 0.3


def test_a_failed_call_and_a_stream_closed_early_end_their_rollouts(captured: Captured) -> None:
    def boom(_: Any) -> Any:
        raise ValueError("boom")

    def letters(inputs: Iterator[Any]) -> Iterator[str]:
        for _ in inputs:
            yield from ("a", "b", "c")

    with pytest.raises(ValueError, match="boom"):
        LangChainWrapper(RunnableLambda(boom), client=captured.client).invoke("hi")
    memory = InMemoryChatMessageHistory()
    stream = LangChainWrapper(RunnableGenerator(letters), memory=memory, client=captured.client).stream("go")
    assert next(stream) == "a"
    stream.close()
    ended = sorted((r["status"], r.get("output")) for r in captured.rollouts().values())
    assert ended == [("completed", "a"), ("failed", None)]
    assert memory.messages == []  # an abandoned stream is not remembered
