"""Fixtures of the SDK's unit tests: the scripted model and a recorder that keeps what it sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentlightning.sdk.client import Client
from agentlightning.sdk.models import AgentResources
from agentlightning.sdk.plan import GatewayRoute
from agentlightning.sdk.recorder import Recorder, merge_updates
from agentlightning.sdk.training import TrainingLink
from agentlightning.sdk.variants import BanditSnapshot
from tests.fake_llm_server import FakeLLMServer
from tests.sdk_helpers import dead_url


class Captured:
    """What a client's recorder would have sent, merged per rollout."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.recorder = Recorder(self._send, batch_interval=0.0)
        self.client = Client(dead_url(), recorder=self.recorder)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            self.batches.append(batch)

    def rollouts(self) -> dict[str, dict[str, Any]]:
        """Every rollout sent so far (after a flush), by id."""
        assert self.recorder.flush(30)
        with self._lock:
            merged = merge_updates([entry for batch in self.batches for entry in batch])
        return {entry["id"]: entry for entry in merged}

    def spans(self) -> list[dict[str, Any]]:
        """Every span sent so far, in order."""
        return [span for rollout in self.rollouts().values() for span in rollout["spans"]]


def link(
    client: Client,
    resources: AgentResources,
    *,
    bandit: BanditSnapshot | None = None,
    gateway: GatewayRoute | None = None,
) -> TrainingLink:
    """A training link of agent 1 as a refresh would have left it (no thread, no platform)."""
    made = TrainingLink(client, "unit-agent")
    made.agent_id = 1
    made.reported = made.resources = resources
    made.bandit = bandit
    made.gateway = gateway
    return made


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    """The scripted OpenAI-compatible model (one per test: langchain-openai caches an async HTTP
    client per base URL, bound to the event loop of the test that made it)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def captured() -> Iterator[Captured]:
    """A platform client whose recorder keeps what it sends."""
    cap = Captured()
    yield cap
    cap.recorder.close(5)
