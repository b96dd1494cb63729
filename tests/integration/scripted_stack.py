"""Fixtures of the checks that need the production stack (PostgreSQL + Redis) with the scripted
LLM and a fast worker pool: the dashboard, deploy and metrics tests.

Imported by the conftest or test module that needs them
(``from tests.integration.scripted_stack import backend, fake_llm, settings``), so each package
keeps its own choice of fixtures; :func:`scripted_settings` builds the settings of a module that
adds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer

FAST_WORKERS: dict[str, Any] = {
    "agent_poll_interval_seconds": 0.2,
    "agent_task_lease_seconds": 5.0,
    "agent_shutdown_grace_seconds": 2.0,
}


def scripted_settings(settings_factory: Callable[..., Settings], fake_llm: FakeLLMServer, **overrides: Any) -> Settings:
    """Test settings whose LLM is the scripted server, with fast workers (and ``overrides``)."""
    return settings_factory(llm_base_url=fake_llm.base_url, llm_model="fake-model", **{**FAST_WORKERS, **overrides})


@pytest.fixture
def backend() -> str:
    """Only the production stack: PostgreSQL and Redis (the Redis gauges need Redis)."""
    return "postgres"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    """The scripted OpenAI-compatible server the module's tasks run against."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], fake_llm: FakeLLMServer) -> Settings:
    """Test settings whose LLM endpoint is the scripted server; workers poll fast."""
    return scripted_settings(settings_factory, fake_llm)
