"""OpenAI clients against the gateway, over real HTTP, in front of the scripted upstream: the
official ``openai`` package (sync, async, streaming, tools) and ``curl -N`` as a non-Python client."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.gateway.conftest import UPSTREAM_KEY
from tests.integration.gateway.helpers import new_key, received

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}


@pytest.fixture
async def key(client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]) -> str:
    """An API key of a plain user."""
    _, plaintext = await new_key(client, await login("user"))
    return plaintext


async def test_async_client_completion_stream_and_tools(
    live_url: str, key: str, llm: FakeLLMServer, app: FastAPI
) -> None:
    ai = openai.AsyncOpenAI(base_url=f"http://{live_url}/v1", api_key=key, max_retries=0)
    marker = unique("hello")
    raw = await ai.chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": marker}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == f"Answer: {marker}"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    assert len(raw.headers["x-rollout-id"]) == 32  # each call its own rollout when none is named
    # The upstream got its own key, never the platform's.
    (seen,) = received(llm, marker)
    assert seen["model"] == "fake-model"
    assert llm.authorizations[llm.requests.index(seen)] == f"Bearer {UPSTREAM_KEY}"

    # Streaming, with the usage chunk asked for.
    marker = unique("stream words")
    stream = await ai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Answer: {marker}"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    # Without include_usage the client gets no usage chunk, though the gateway asked the upstream for one.
    marker = unique("no usage")
    stream = await ai.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": marker}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert received(llm, marker)[0]["stream_options"] == {"include_usage": True}

    # Tools, plain and streamed.
    reply = await ai.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "calculate: 6*7"}], tools=[CALCULATOR]
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "6*7"}
    stream = await ai.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "calculate: 1+2"}], tools=[CALCULATOR], stream=True
    )
    deltas = [c.choices[0].delta for c in [chunk async for chunk in stream] if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert calls[0].function.name == "calculator" and json.loads(calls[0].function.arguments) == {"expression": "1+2"}
    # The tool result goes back and the model answers with it.
    reply = await ai.chat.completions.create(
        model="fake-model",
        messages=[
            {"role": "user", "content": "calculate: 6*7"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "42"},
        ],
        tools=[CALCULATOR],
    )
    assert reply.choices[0].message.content == "Result: 42"

    # The reward endpoint through the same client (as docs/gateway.md shows it).
    rollout = raw.headers["x-rollout-id"]
    rewarded = await ai.post(f"/rollouts/{rollout}/reward", body={"reward": 1.0}, cast_to=httpx.Response)
    assert rewarded.json()["rollout_id"] == rollout and rewarded.json()["reward"] == 1.0

    models = await ai.models.list()
    assert {"fake-model", "gpt-4o-mini", "broken-model"} <= {m.id for m in models.data}
    await ai.close()


async def test_sync_client_and_the_x_api_key_header(live_url: str, key: str) -> None:
    marker = unique("sync")

    def call() -> tuple[str, list[str]]:
        with openai.OpenAI(base_url=f"http://{live_url}/v1", api_key=key, max_retries=0) as ai:
            reply = ai.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": marker}])
            stream = ai.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": marker}], stream=True
            )
            return str(reply.choices[0].message.content), [c.choices[0].delta.content or "" for c in stream]

    content, pieces = await asyncio.to_thread(call)  # the server runs on this test's event loop
    assert content == f"Answer: {marker}" and "".join(pieces) == f"Answer: {marker}"
    # X-API-Key is accepted as well as Authorization: Bearer.
    async with httpx.AsyncClient(base_url=f"http://{live_url}") as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={"X-API-Key": key, "X-Rollout-Id": "my-rollout.1"},
            json={"model": "fake-model", "messages": [{"role": "user", "content": marker}]},
        )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"
    assert response.headers["x-rollout-id"] == "my-rollout.1"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_streams_server_sent_events(live_url: str, key: str) -> None:
    marker = unique("curl")
    body = {"model": "fake-model", "messages": [{"role": "user", "content": marker}], "stream": True}
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sN",
        "--max-time",
        "60",
        "-H",
        f"Authorization: Bearer {key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps(body),
        f"http://{live_url}/v1/chat/completions",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0
    events = [line[len("data: ") :] for line in out.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == f"Answer: {marker}"
