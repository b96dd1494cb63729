"""The gateway in front of the embedded local model, for real (llama.cpp on the CPU, the 0.5B
Qwen2.5-Coder from the pinned wheels, nothing downloaded): the ``openai`` client gets a completion
and a stream, with usage. Kept short: a few tokens each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import openai
import pytest
from fastapi import FastAPI

from agentlightning.settings import Settings
from tests.integration.gateway.helpers import flush, new_key, rollout_of

MODEL = "qwen2.5-coder-0.5b"
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"])]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """No upstream at all: ``local`` (and the model's catalogue name) is the embedded model."""
    return settings_factory(local_model=MODEL, gateway_local_model=True, local_model_max_new_tokens=16)


async def test_openai_client_against_the_embedded_model(
    live_url: str, client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], app: FastAPI
) -> None:
    _, key = await new_key(client, await login("user"))
    ai = openai.AsyncOpenAI(base_url=f"http://{live_url}/v1", api_key=key, max_retries=0, timeout=240)
    models = {m.id for m in (await ai.models.list()).data}
    assert {"local", "qwen2.5-coder-0.5b-instruct-q4_k_m"} <= models
    messages = [{"role": "user", "content": "Say hello."}]
    reply = await ai.chat.completions.with_raw_response.create(model="local", messages=messages, max_tokens=8)
    completion = reply.parse()
    assert completion.choices[0].message.content
    assert (
        completion.usage is not None and completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    )
    stream = await ai.chat.completions.create(
        model="local", messages=messages, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    await flush(app)
    recorded = await rollout_of(app, reply.headers["x-rollout-id"])
    assert recorded["spans"][0]["kind"] == "llm" and recorded["spans"][0]["completion_tokens"] > 0
    await ai.close()
