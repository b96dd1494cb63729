"""The gateway's hot path runs no database statement per call: the API key, the key's policy and
the agent's promoted resources are remembered a few seconds, and spans are written in batches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from agentlightning.observability import metrics
from agentlightning.settings import Settings
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent
from tests.integration.gateway.helpers import flush, new_key, received, rollout_of


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], llm: FakeLLMServer) -> Settings:
    """The defaults' caching (longer, so a slow machine cannot expire it mid-test) and a recorder
    that waits to write until flushed."""
    return settings_factory(
        llm_providers={"fake": {"base_url": llm.base_url, "models": ["fake-model"]}},
        gateway_local_model=False,
        gateway_cache_seconds=60.0,
        auth_api_key_cache_seconds=60.0,
        gateway_record_interval_seconds=60.0,
    )


def _statements() -> float:
    return sum(sample.value for sample in metrics.DB_QUERIES.collect()[0].samples if sample.name.endswith("_total"))


async def test_calls_run_no_database_statement(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]], app: FastAPI, llm: FakeLLMServer
) -> None:
    name = unique("cached")
    await create_agent(client, await login("developer"), name, config={"system_prompt": "Cached prompt."})
    _, key = await new_key(client, await login("user"))
    headers = {"X-API-Key": key, "X-Agent-Name": name, "X-Rollout-Id": unique("hot")}
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "warm"}]}
    for _ in range(2):  # warm: the key, its policy and the agent are read once (and SQLite's
        # in-process user record is re-read once after the first call's write of last_used_at)
        assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
    before = _statements()
    marker = unique("hot")
    for _ in range(5):
        body = {"model": "fake-model", "messages": [{"role": "user", "content": marker}]}
        assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
    assert _statements() == before  # nothing read or written on the calls' path
    assert all(r["messages"][0]["content"] == "Cached prompt." for r in received(llm, marker))
    await flush(app)  # the recorder writes all seven in one batch
    assert len((await rollout_of(app, headers["X-Rollout-Id"]))["spans"]) == 7
