"""Fixtures for agent tests: a scripted OpenAI-compatible server, settings that use it, a worker
pool inside the test's app, and a real HTTP/WebSocket server on the test's event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer

AGENT_TEST_SETTINGS: dict[str, Any] = {
    "agent_task_lease_seconds": 2.0,
    "agent_poll_interval_seconds": 0.2,
    "agent_shutdown_grace_seconds": 2.0,
    "agent_workers_min": 1,
    "agent_workers_max": 8,
    "sandbox_timeout_seconds": 5.0,
    # Agents below bring their own upstream (scripted servers on loopback ports) with their own key.
    "llm_custom_allowed_hosts": ["127.0.0.1"],
    "llm_custom_allowed_ports": ["1024-65535"],
    "egress_allowed_networks": ["127.0.0.1/32"],
}


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLMServer]:
    """One scripted OpenAI-compatible server for the whole session (default script)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], fake_llm: FakeLLMServer) -> Settings:
    """Test settings whose LLM endpoint is the scripted server."""
    return settings_factory(llm_base_url=fake_llm.base_url, llm_model="fake-model", **AGENT_TEST_SETTINGS)


@pytest.fixture
async def admin(login: Callable[[str], Awaitable[dict[str, str]]]) -> dict[str, str]:
    """Headers of an admin user."""
    return await login("admin")
