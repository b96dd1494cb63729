"""A worker's most tasks at once: ``AGENT_WORKERS_MAX`` and ``--max`` when given, else a default
that follows the agents' default LLM (a worker serving an upstream waits on it most of the time)."""

from __future__ import annotations

import pytest

from agentlightning.agents.pool import (
    LOCAL_MODEL_MAX_CONCURRENCY,
    UPSTREAM_MAX_CONCURRENCY,
    WorkerPool,
    default_max_concurrency,
)
from agentlightning.settings import Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_unset_the_default_follows_the_default_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_WORKERS_MAX", raising=False)
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    assert default_max_concurrency(_settings()) == LOCAL_MODEL_MAX_CONCURRENCY == 8
    assert default_max_concurrency(_settings(llm_base_url="http://llm.internal/v1")) == UPSTREAM_MAX_CONCURRENCY == 64
    monkeypatch.setenv("AGENT_WORKERS_MAX", "")  # as the generated .env.example leaves it
    assert _settings().agent_workers_max is None


def test_a_setting_or_a_flag_wins() -> None:
    remote = _settings(llm_base_url="http://llm.internal/v1", agent_workers_max=3)
    assert default_max_concurrency(remote) == 3 and WorkerPool(remote).max_concurrency == 3
    assert WorkerPool(remote, max_concurrency=20).max_concurrency == 20
    assert WorkerPool(_settings(agent_workers_min=12)).max_concurrency == 12  # never below the minimum
