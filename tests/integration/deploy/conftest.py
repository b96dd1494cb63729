"""Fixtures of the deploy checks: the PostgreSQL + Redis stack (as deployed) with the scripted LLM."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer


@pytest.fixture
def backend() -> str:
    """Only the production stack: PostgreSQL and Redis (so the Redis gauges have samples)."""
    return "postgres"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    """The scripted OpenAI-compatible server the test's task runs against."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], fake_llm: FakeLLMServer) -> Settings:
    """Test settings whose LLM endpoint is the scripted server; workers poll fast."""
    return settings_factory(
        llm_base_url=fake_llm.base_url,
        llm_model="fake-model",
        agent_poll_interval_seconds=0.2,
        agent_task_lease_seconds=5.0,
        agent_shutdown_grace_seconds=2.0,
    )
