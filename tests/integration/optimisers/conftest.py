"""Fixtures of the optimiser and suite tests: artifacts in a temporary directory, no embedding model,
and a scripted LLM that answers right only under the system prompt of the ``good`` variant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer

#: The ``good`` variant's system prompt carries this; the scripted model answers 42 only then.
GOOD_MARKER = "State the answer as 'Answer: 42'."


def variant_script(body: dict[str, Any]) -> dict[str, Any]:
    """Answers ``Answer: 42`` when the system prompt carries :data:`GOOD_MARKER`, else rambles."""
    system = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"), "")
    return {"content": "Answer: 42" if GOOD_MARKER in system else "I would rather not say."}


@pytest.fixture(scope="session")
def variant_llm() -> Iterator[FakeLLMServer]:
    """The scripted server of :func:`variant_script`, for the whole session."""
    with FakeLLMServer(variant_script) as server:
        yield server


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], tmp_path: Path, variant_llm: FakeLLMServer) -> Settings:
    """Test settings: the RL artifacts (the suite's sample database) in the test's directory, the
    scripted LLM, and a fast worker pool."""
    return settings_factory(
        rl_artifacts_dir=str(tmp_path / "rl"),
        rl_suite_embed_knowledge=False,
        llm_base_url=variant_llm.base_url,
        llm_model="fake-model",
        agent_task_lease_seconds=5.0,
        agent_poll_interval_seconds=0.1,
        agent_shutdown_grace_seconds=2.0,
        agent_workers_min=1,
        agent_workers_max=4,
        bandit_sweep_interval_seconds=3600.0,  # the tests run the bandit's sweep themselves
    )
