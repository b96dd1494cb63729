"""Fixtures of the workflow tests: the scripted LLM server, a worker pool and the workflow engine
running inside the test's app (as ``serve`` runs them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from fastapi import FastAPI

from agentlightning.settings import Settings
from agentlightning.workflows.engine import WorkflowEngine
from tests.fake_llm_server import FakeLLMServer

WORKFLOW_TEST_SETTINGS = {
    "agent_task_lease_seconds": 2.0,
    "agent_poll_interval_seconds": 0.2,
    "agent_shutdown_grace_seconds": 2.0,
    "agent_workers_min": 1,
    "agent_workers_max": 8,
    "workflow_poll_interval_seconds": 0.2,
    "workflow_lease_seconds": 3.0,
}


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLMServer]:
    """One scripted OpenAI-compatible server for the session (default script: ``Answer: <task>``)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], fake_llm: FakeLLMServer) -> Settings:
    """Test settings whose LLM endpoint is the scripted server."""
    return settings_factory(llm_base_url=fake_llm.base_url, llm_model="fake-model", **WORKFLOW_TEST_SETTINGS)


@pytest.fixture
async def engine(app: FastAPI, settings: Settings) -> AsyncIterator[WorkflowEngine]:
    """The workflow engine running in the test's app."""
    service = WorkflowEngine(settings)
    await service.start(app.state.ctx)
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def admin(login: Callable[[str], Awaitable[dict[str, str]]]) -> dict[str, str]:
    """Headers of an admin user."""
    return await login("admin")
