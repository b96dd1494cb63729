"""Fixtures of the gateway tests: scripted upstreams (one answering, one failing, one slow) behind
``LLM_PROVIDERS``, settings that route to them, and API keys of fresh users."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer

UPSTREAM_KEY = "upstream-secret-key"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    """The scripted upstream that answers (the default script; SSE when asked to stream)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def broken_llm() -> Iterator[FakeLLMServer]:
    """An upstream that answers every call with a 500 in OpenAI's error format (and a Retry-After)."""
    with FakeLLMServer(fail_first=1_000_000, retry_after="7") as server:
        yield server


@pytest.fixture(scope="module")
def slow_llm() -> Iterator[FakeLLMServer]:
    """An upstream that takes 3 s to answer."""
    with FakeLLMServer(delay_s=3.0) as server:
        yield server


@pytest.fixture
def settings(
    settings_factory: Callable[..., Settings], llm: FakeLLMServer, broken_llm: FakeLLMServer, slow_llm: FakeLLMServer
) -> Settings:
    """Three upstreams by model name; no embedded model; policies and resources read every call."""
    return settings_factory(
        llm_providers={
            "fake": {"base_url": llm.base_url, "api_key": UPSTREAM_KEY, "models": ["fake-model", "gpt-4o-mini"]},
            "broken": {"base_url": broken_llm.base_url, "models": ["broken-model"]},
            "slow": {"base_url": slow_llm.base_url, "models": ["slow-model"]},
        },
        gateway_local_model=False,
        gateway_cache_seconds=0.0,
    )
