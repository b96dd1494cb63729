"""AutoGenWrapper (autogen-agentchat 0.7, an AssistantAgent with autogen-ext's
OpenAIChatCompletionClient on the scripted model): the same results, one llm span per model call."""

from __future__ import annotations

from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import TextMessage
from autogen_core import CancellationToken
from autogen_core.models import ModelFamily
from autogen_ext.models.openai import OpenAIChatCompletionClient

from agentlightning import AutoGenWrapper, emit_reward
from agentlightning.integrations.autogen import RecordingChatCompletionClient
from agentlightning.sdk.models import AgentResources
from tests.fake_llm_server import FakeLLMServer
from tests.sdk_helpers import dead_url, strip_ids
from tests.unit.sdk.conftest import Captured, link

MODEL_INFO: Any = {
    "vision": False,
    "function_calling": True,
    "json_output": False,
    "family": ModelFamily.UNKNOWN,
    "structured_output": False,
}


def assistant(llm: FakeLLMServer, **kwargs: Any) -> AssistantAgent:
    client = OpenAIChatCompletionClient(
        model="fake-model", base_url=llm.base_url, api_key="test", model_info=MODEL_INFO
    )
    return AssistantAgent("assistant", model_client=client, system_message="Be brief.", **kwargs)


def messages(result: Any) -> list[Any]:
    return [strip_ids({k: v for k, v in m.model_dump().items() if k != "created_at"}) for m in result.messages]


async def test_run_and_run_stream_return_what_the_agent_returns(llm: FakeLLMServer, captured: Captured) -> None:
    plain = assistant(llm)
    wrapped = AutoGenWrapper(assistant(llm), client=captured.client)
    assert isinstance(wrapped.agent._model_client, RecordingChatCompletionClient)
    assert messages(await wrapped.run(task="hello")) == messages(await plain.run(task="hello"))

    expected = [type(item).__name__ async for item in plain.run_stream(task="again")]
    got = [type(item).__name__ async for item in wrapped.run_stream(task="again")]
    assert got == expected

    rollouts = list(captured.rollouts().values())
    assert len(rollouts) == 2
    span = rollouts[0]["spans"][0]
    assert span["kind"] == "llm" and span["model"] == "fake-model"
    assert span["input"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert span["output"]["content"] == "Answer: hello"
    assert span["prompt_tokens"] is not None
    assert rollouts[0]["output"] == "Answer: hello"
    # the saved agent keeps its own model client's configuration
    assert wrapped.dump_component().config["model_client"]["provider"].endswith("OpenAIChatCompletionClient")


async def test_on_messages_and_tool_calls_are_recorded_in_the_current_rollout(
    llm: FakeLLMServer, captured: Captured
) -> None:
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return str(eval(expression, {"__builtins__": {}}))  # the test's own fixed input

    wrapped = AutoGenWrapper(assistant(llm, tools=[calculator], reflect_on_tool_use=True), client=captured.client)
    async with captured.client.rollout() as rollout:
        response = await wrapped.on_messages(
            [TextMessage(content="calculate: 6*7", source="user")], CancellationToken()
        )
        emit_reward(1.0)
    assert response.chat_message.content == "Result: 42"
    entry = captured.rollouts()[rollout.id]
    assert [s["kind"] for s in entry["spans"]] == ["llm", "llm"]
    assert entry["spans"][0]["output"]["tool_calls"][0]["function"]["name"] == "calculator"
    assert entry["spans"][1]["input"]["messages"][-1]["role"] == "tool"
    assert entry["rewards"] == [{"value": 1.0}]


@pytest.mark.filterwarnings("ignore:Resolved model mismatch")  # autogen-ext notes the promoted model
async def test_promoted_resources_reach_the_model(llm: FakeLLMServer, captured: Captured) -> None:
    wrapped = AutoGenWrapper(assistant(llm), client=captured.client)
    resources = AgentResources(agent_id=1, system_prompt="Promoted.", model="promoted-model", temperature=0.3)
    wrapped._al_link = link(captured.client, resources)
    await wrapped.run(task="hi")
    sent = llm.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Promoted."}
    assert sent["model"] == "promoted-model" and sent["temperature"] == 0.3


async def test_a_failed_create_and_a_stream_closed_early_end_their_rollouts(
    llm: FakeLLMServer, captured: Captured
) -> None:
    from autogen_core.models import UserMessage

    wrapper = AutoGenWrapper(assistant(llm), client=captured.client)
    dead = OpenAIChatCompletionClient(
        model="fake-model", base_url=dead_url(), api_key="test", model_info=MODEL_INFO, max_retries=0
    )
    failing = RecordingChatCompletionClient(dead, wrapper)
    with pytest.raises(Exception):  # noqa: B017 - whatever the inner client raises
        await failing.create([UserMessage(content="hi", source="user")])
    working = RecordingChatCompletionClient(assistant(llm)._model_client, wrapper)
    stream = working.create_stream([UserMessage(content="two words", source="user")])
    await stream.__anext__()
    await stream.aclose()
    ended = sorted((r["status"], len(r["spans"])) for r in captured.rollouts().values())
    assert ended == [("completed", 0), ("failed", 1)]
    assert [r["spans"][0]["status"] for r in captured.rollouts().values() if r["spans"]] == ["error"]
