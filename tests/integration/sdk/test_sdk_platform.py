"""The SDK against a real platform (served over HTTP by the test's app, both backends) and the
scripted model: spans and rewards land, promoted resources reach the upstream after refresh(),
and a plain user's SDK stays within that user's rights.

The platform runs on this test's event loop, so the SDK's blocking calls run in a thread
(``asyncio.to_thread``) and the loop keeps serving them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
from autogen_agentchat.agents import AssistantAgent
from autogen_core.models import ModelFamily
from autogen_ext.models.openai import OpenAIChatCompletionClient
from langchain_openai import ChatOpenAI

from agentlightning import (
    AsyncClient,
    AutoGenWrapper,
    Client,
    LangChainWrapper,
    OpenAIWrapper,
    PlatformError,
    emit_reward,
)
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.sdk.conftest import SdkFactory

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]


def openai_wrapper(llm: FakeLLMServer, sdk_client: Client) -> OpenAIWrapper:
    return OpenAIWrapper(openai.OpenAI(base_url=llm.base_url, api_key="test"), client=sdk_client)


async def test_openai_spans_and_rewards_land_on_the_platform(
    sdk: SdkFactory, llm: FakeLLMServer, client: httpx.AsyncClient
) -> None:
    sdk_client, headers = await sdk("developer")
    wrapped = openai_wrapper(llm, sdk_client)

    def agent() -> tuple[str, str | None]:
        with sdk_client.rollout(metadata={"task_type": "greeting"}) as rollout:
            wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
            wrapped.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            ).close()
            emit_reward(0.8, name="judge")
        wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
        single = emit_reward(1.0)
        assert sdk_client.flush(60)
        return rollout.id, single

    grouped_id, single_id = await asyncio.to_thread(agent)
    assert single_id is not None
    assert sdk_client.recorder.stats()["rejected"] == 0 and sdk_client.recorder.stats()["dropped"] == 0

    grouped = await asyncio.to_thread(sdk_client.get_rollout, grouped_id)
    assert grouped is not None
    assert grouped.source == "sdk" and grouped.status == "completed"
    assert grouped.metadata == {"task_type": "greeting"}
    assert grouped.reward == 0.8
    assert [(r["value"], r["source"], r["name"]) for r in grouped.rewards] == [(0.8, "sdk", "judge")]
    assert [s["kind"] for s in grouped.spans] == ["llm", "llm"]
    first = grouped.spans[0]
    assert first["model"] == "fake-model" and first["prompt_tokens"] and first["completion_tokens"]
    assert first["input"]["messages"] == MESSAGES and first["output"]["content"] == "Answer: hello there"
    assert first["latency_ms"] > 0

    single = await asyncio.to_thread(sdk_client.get_rollout, single_id)
    assert single is not None and single.reward == 1.0 and len(single.spans) == 1
    assert single.input == {"messages": MESSAGES}

    listed = await client.get("/api/v2/rollouts", params={"source": "sdk"}, headers=headers)
    assert {grouped_id, single_id} <= {r["id"] for r in listed.json()["data"]["items"]}


async def test_langchain_and_autogen_spans_land_on_the_platform(sdk: SdkFactory, llm: FakeLLMServer) -> None:
    sdk_client, _ = await sdk("developer")
    chain = LangChainWrapper(
        ChatOpenAI(model="fake-model", base_url=llm.base_url, api_key="test"),  # type: ignore[arg-type]
        client=sdk_client,
    )
    model_client = OpenAIChatCompletionClient(
        model="fake-model",
        base_url=llm.base_url,
        api_key="test",
        model_info={
            "vision": False,
            "function_calling": True,
            "json_output": False,
            "family": ModelFamily.UNKNOWN,
            "structured_output": False,
        },
    )
    team_member = AutoGenWrapper(AssistantAgent("assistant", model_client=model_client), client=sdk_client)

    async with sdk_client.rollout() as rollout:
        answer = await chain.ainvoke("from langchain")
        result = await team_member.run(task="from autogen")
        emit_reward(0.25)
    assert answer.content == "Answer: from langchain"
    assert result.messages[-1].content == "Answer: from autogen"
    assert await asyncio.to_thread(sdk_client.flush, 60)

    stored = await asyncio.to_thread(sdk_client.get_rollout, rollout.id)
    assert stored is not None and stored.reward == 0.25
    assert [s["output"]["content"] for s in stored.spans] == ["Answer: from langchain", "Answer: from autogen"]
    assert {s["attributes"]["framework"] for s in stored.spans} == {"langchain", "autogen"}


async def test_a_changed_agent_prompt_reaches_the_upstream_after_refresh(
    sdk: SdkFactory, llm: FakeLLMServer, client: httpx.AsyncClient
) -> None:
    sdk_client, headers = await sdk("developer")
    name = unique("sdk-agent")
    wrapped = openai_wrapper(llm, sdk_client)
    await asyncio.to_thread(
        wrapped.enable_rl_training, name, system_prompt="Original prompt.", model="fake-model", refresh_interval=3600
    )
    agent_id = wrapped.agent_id
    assert agent_id is not None

    def call() -> dict[str, Any]:
        wrapped.chat.completions.create(model="gpt-4", messages=MESSAGES, temperature=0.9)
        return llm.requests[-1]

    sent = await asyncio.to_thread(call)
    assert sent["messages"][0] == {"role": "system", "content": "Original prompt."}
    assert sent["model"] == "fake-model"
    assert sent["temperature"] == 0.9  # the platform set no temperature: the agent's own stays

    update = await client.put(
        f"/api/v2/agents/{agent_id}",
        headers=headers,
        json={"config": {"system_prompt": "Improved prompt.", "temperature": 0.1}},
    )
    assert update.status_code == 200, update.text
    assert (await asyncio.to_thread(call))["messages"][0]["content"] == "Original prompt."  # not refreshed yet
    resources = await asyncio.to_thread(wrapped.refresh)
    assert resources is not None and resources.system_prompt == "Improved prompt."
    sent = await asyncio.to_thread(call)
    assert sent["messages"][0] == {"role": "system", "content": "Improved prompt."}
    assert sent["messages"][1:] == MESSAGES[1:] and sent["temperature"] == 0.1

    # The same name finds the same agent; the calls' rollouts carry it.
    again = openai_wrapper(llm, sdk_client)
    await asyncio.to_thread(again.enable_rl_training, name)
    assert again.agent_id == agent_id
    assert await asyncio.to_thread(sdk_client.flush, 60)
    mine = await asyncio.to_thread(sdk_client.list_rollouts, agent_id=agent_id)
    assert len(mine) == 3
    wrapped.disable_rl_training()
    again.disable_rl_training()


async def test_the_client_speaks_the_platform_api(sdk: SdkFactory, live_url: str) -> None:
    sdk_client, _ = await sdk("developer")
    name = unique("sdk-api")

    def sync_calls() -> None:
        assert sdk_client.find_agent(name) is None
        agent = sdk_client.ensure_agent(name, system_prompt="You help.")
        assert sdk_client.ensure_agent(name).id == agent.id
        assert sdk_client.agent_resources(agent.id).system_prompt == "You help."
        task = sdk_client.assign_task("say hi", agent_id=agent.id)
        assert sdk_client.get_task(task.id).status == "pending"
        try:
            sdk_client.feedback(task.id, 1.0)
        except PlatformError as exc:
            assert exc.status == 409 and exc.code == "TASK_NOT_FINISHED"
        else:
            raise AssertionError("feedback on a pending task was accepted")
        ingested = sdk_client.ingest([{"id": f"{name}-r", "agent_id": agent.id, "spans": [], "rewards": []}])
        assert ingested.ids == [f"{name}-r"]
        assert sdk_client.add_reward(f"{name}-r", 0.5).value == 0.5
        try:
            sdk_client.get_agent(unique("missing"))
        except PlatformError as exc:
            assert exc.status == 404 and exc.code == "AGENT_NOT_FOUND"
        else:
            raise AssertionError("a missing agent was found")

    await asyncio.to_thread(sync_calls)

    async with AsyncClient(f"http://{live_url}", api_key=sdk_client.api_key) as async_client:
        agent = await async_client.ensure_agent(name)
        assert (await async_client.agent_resources(agent.id)).agent_id == agent.id
        rollout = await async_client.get_rollout(f"{name}-r")
        assert rollout is not None and rollout.reward == 0.5
        assert await async_client.get_rollout(unique("none")) is None

    unauthenticated = Client(f"http://{live_url}", api_key="")
    try:
        await asyncio.to_thread(unauthenticated.find_agent, name)
    except PlatformError as exc:
        assert exc.status == 401
    else:
        raise AssertionError("an anonymous client was served")
    unauthenticated.close(0.1)


async def test_a_plain_users_sdk_stays_within_that_users_rights(sdk: SdkFactory, llm: FakeLLMServer) -> None:
    alice, _ = await sdk("user")
    mallory, _ = await sdk("user")
    wrapped = openai_wrapper(llm, alice)
    # A plain user may not register agents: RL training stays off, the agent runs on.
    await asyncio.to_thread(wrapped.enable_rl_training, unique("user-agent"), wait=10)
    assert wrapped.agent_id is None and wrapped._al_link is not None and "403" in str(wrapped._al_link.last_error)

    def alice_runs() -> str:
        with alice.rollout() as rollout:
            wrapped.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert alice.flush(60)
        return rollout.id

    rollout_id = await asyncio.to_thread(alice_runs)

    def mallory_tries() -> None:
        assert mallory.get_rollout(rollout_id) is None  # not visible to another user
        emit_reward(-1.0, rollout_id=rollout_id, client=mallory)  # refused by the platform
        assert mallory.flush(60)

    await asyncio.to_thread(mallory_tries)
    assert mallory.recorder.stats()["rejected"] == 1
    stored = await asyncio.to_thread(alice.get_rollout, rollout_id)
    assert stored is not None and stored.rewards == [] and len(stored.spans) == 1
    wrapped.disable_rl_training()
