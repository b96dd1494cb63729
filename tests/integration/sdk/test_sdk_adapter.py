"""An agent served with a LoRA adapter (what Auto-RL promotes from ``grpo``), for real on the CPU:
the gateway serves it through the transformers provider, the SDK's OpenAI wrapper routes the
agent's calls there (and records them in one rollout with the gateway), and back to the user's own
upstream once the adapter is gone.

The adapter is a freshly initialised LoRA on SmolLM2-135M-Instruct, as in
``tests/integration/agents/test_adapter_serving.py``: serving does not depend on its training."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI

from agentlightning import OpenAIWrapper, emit_reward
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, save_tiny_adapter
from tests.integration.gateway.helpers import flush, new_key, rollout_of
from tests.integration.sdk.conftest import SdkFactory

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite", "postgres"])]
Login = Callable[[str], Awaitable[dict[str, str]]]
ADAPTER_MODEL = "smollm2-135m-instruct+lora:adapter"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RL_ARTIFACTS_DIR with one LoRA adapter (as grpo saves it) under ``exp/adapter``."""
    return save_tiny_adapter(tmp_path_factory.mktemp("rl"))


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], artifacts: Path) -> Settings:
    """No upstream and no embedded model at the gateway: only the adapter can answer there."""
    return settings_factory(
        rl_artifacts_dir=str(artifacts),
        gateway_local_model=False,
        gateway_cache_seconds=0.0,
        local_model_max_new_tokens=6,
    )


async def test_the_gateway_serves_an_agents_adapter(
    client: httpx.AsyncClient, login: Login, app: FastAPI, live_url: str
) -> None:
    admin = await login("admin")
    adapted = await create_agent(client, admin, unique("lora"), config={"adapter": "exp/adapter", "temperature": 0.0})
    plain = await create_agent(client, admin, unique("plain"))
    _, key = await new_key(client, await login("user"))
    ai = openai.AsyncOpenAI(base_url=f"http://{live_url}/v1", api_key=key, max_retries=0, timeout=240)

    # By name in "model" (the gateway applies the agent's resources and serves its adapter).
    reply = await ai.chat.completions.with_raw_response.create(
        model=f"agent:{adapted['name']}", messages=HELLO, max_tokens=6
    )
    completion = reply.parse()
    assert completion.model == ADAPTER_MODEL and completion.usage is not None
    assert completion.usage.completion_tokens > 0
    # Streamed, by header, as the SDK sends it.
    stream = await ai.chat.completions.create(
        model="anything",
        messages=HELLO,
        max_tokens=6,
        stream=True,
        extra_headers={"X-Agent-Id": str(adapted["id"]), "X-Agent-Apply": "adapter"},
    )
    chunks = [chunk async for chunk in stream]
    assert {c.model for c in chunks} == {ADAPTER_MODEL}
    await flush(app)
    recorded = await rollout_of(app, reply.headers["x-rollout-id"])
    assert recorded["agent_id"] == adapted["id"] and recorded["spans"][0]["model"] == ADAPTER_MODEL

    # An agent without an adapter: "adapter only" is a 404 the SDK falls back on; a bad value a 400.
    with pytest.raises(openai.NotFoundError) as gone:
        await ai.chat.completions.create(
            model="anything", messages=HELLO, extra_headers={"X-Agent-Id": str(plain["id"]), "X-Agent-Apply": "adapter"}
        )
    assert gone.value.code == "agent_has_no_adapter"
    with pytest.raises(openai.BadRequestError):
        await ai.chat.completions.create(
            model="anything", messages=HELLO, extra_headers={"X-Agent-Id": str(plain["id"]), "X-Agent-Apply": "some"}
        )
    await ai.close()


async def test_the_sdk_routes_an_adapted_agent_through_the_gateway(
    sdk: SdkFactory, llm: FakeLLMServer, client: httpx.AsyncClient, login: Login, app: FastAPI
) -> None:
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("sdk-lora"), type="sdk", config={"adapter": "exp/adapter"})
    sdk_client, _ = await sdk("user")
    wrapped = OpenAIWrapper(
        openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0, timeout=240), client=sdk_client
    )
    await asyncio.to_thread(wrapped.enable_rl_training, agent["name"], refresh_interval=3600)
    assert wrapped.resources is not None and wrapped.resources.adapter == "exp/adapter"

    def call() -> tuple[str, str]:
        reply = wrapped.chat.completions.create(model="fake-model", messages=HELLO, max_tokens=6)
        rollout_id = emit_reward(0.5)
        assert rollout_id is not None and sdk_client.flush(60)
        return reply.model, rollout_id

    model, rollout_id = await asyncio.to_thread(call)
    assert model == ADAPTER_MODEL and llm.requests == []  # the user's own upstream was not called
    await flush(app)
    stored = await asyncio.to_thread(sdk_client.get_rollout, rollout_id)
    assert stored is not None and stored.agent_id == agent["id"] and stored.reward == 0.5
    assert [s["model"] for s in stored.spans] == [ADAPTER_MODEL]  # one span: the gateway's

    # The adapter is rolled back: after the next refresh the calls go to the user's upstream again.
    removed = await client.put(f"/api/v2/agents/{agent['id']}", json={"config": {"adapter": None}}, headers=admin)
    assert removed.status_code == 200, removed.text
    await asyncio.to_thread(wrapped.refresh)
    model, rollout_id = await asyncio.to_thread(call)
    assert model == "fake-model" and len(llm.requests) == 1
    stored = await asyncio.to_thread(sdk_client.get_rollout, rollout_id)
    assert stored is not None and [s["model"] for s in stored.spans] == ["fake-model"]
    wrapped.disable_rl_training()
