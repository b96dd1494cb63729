"""Fixtures of the SDK's end-to-end tests: the platform served over real HTTP (``live_url``), an
SDK client holding an API key of a fresh user, and the scripted model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from agentlightning import Client
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import login_as, unique

SdkFactory = Callable[[str], Awaitable[tuple[Client, dict[str, str]]]]


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    """The scripted OpenAI-compatible model the wrapped agents call (one per test: langchain-openai
    caches an async HTTP client per base URL, bound to the event loop of the test that made it)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def sdk(client: httpx.AsyncClient, app: FastAPI, live_url: str) -> AsyncIterator[SdkFactory]:
    """``await sdk(role)`` -> an SDK ``Client`` on the live platform with a fresh user's API key,
    and that user's bearer headers (for checking through the API)."""
    made: list[Client] = []

    async def _make(role: str) -> tuple[Client, dict[str, str]]:
        headers = await login_as(client, app, role)
        response = await client.post("/auth/api-keys", json={"name": unique("sdk")}, headers=headers)
        assert response.status_code == 201, response.text
        sdk_client = Client(
            f"http://{live_url}",
            api_key=response.json()["data"]["key"],
            recorder_options={"batch_interval": 0.0, "backoff_base": 0.05},
        )
        made.append(sdk_client)
        return sdk_client, headers

    yield _make
    for sdk_client in made:
        sdk_client.close(0.1)
