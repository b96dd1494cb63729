"""Fixtures of the security tests that run whole tasks: a scripted LLM, settings that use it, workers.

Imported by the test modules that need them (``from tests.security.agent_stack import ...``), so
no ``conftest.py`` is shared with the other security test files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer

STACK_SETTINGS: dict[str, Any] = {
    "agent_task_lease_seconds": 5.0,
    "agent_poll_interval_seconds": 0.2,
    "agent_shutdown_grace_seconds": 2.0,
    "agent_workers_min": 1,
    "agent_workers_max": 4,
    "sandbox_timeout_seconds": 10.0,
}


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    """The scripted OpenAI-compatible server (default script) for this module."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], fake_llm: FakeLLMServer) -> Settings:
    """Settings whose default provider is the scripted server."""
    return settings_factory(llm_base_url=fake_llm.base_url, llm_model="fake-model", **STACK_SETTINGS)
