"""Provider credentials stay with the upstreams an admin configured.

Two scripted servers: the platform's upstream (``LLM_BASE_URL`` with ``LLM_API_KEY``) and an
"attacker" server a developer controls. Whatever an agent's config says, the platform's key never
reaches the attacker; an agent's own upstream gets only the agent's own key, and only where the
egress rules allow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from agentlightning.agents.llm import ProviderFactory
from agentlightning.agents.pool import WorkerPool
from agentlightning.settings import Settings
from agentlightning.storage.models import Agent
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task

PLATFORM_KEY = "sk-platform-secret-0000"
SECOND_KEY = "sk-second-provider-1111"
Login = Callable[[str], Awaitable[dict[str, str]]]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeLLMServer, FakeLLMServer, FakeLLMServer]]:
    """(platform upstream, a second admin upstream, the attacker's server)."""
    with FakeLLMServer() as platform, FakeLLMServer() as second, FakeLLMServer() as attacker:
        yield platform, second, attacker


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], upstreams: tuple[FakeLLMServer, ...]) -> Settings:
    platform, second, _ = upstreams
    return settings_factory(
        llm_base_url=platform.base_url,
        llm_api_key=PLATFORM_KEY,
        llm_model="fake-model",
        llm_providers={"second": {"base_url": second.base_url, "api_key": SECOND_KEY}},
        llm_max_retries=0,
        agent_poll_interval_seconds=0.2,
        agent_task_max_attempts=1,
    )


def _keys(server: FakeLLMServer) -> set[str | None]:
    return set(server.authorizations)


async def _assign(client: httpx.AsyncClient, headers: dict[str, str], agent_id: int) -> dict:
    response = await client.post("/api/v2/agents/assign", json={"task": "hello", "agent_id": agent_id}, headers=headers)
    assert response.status_code in (200, 201, 202), response.text
    return await wait_for_task(client, headers, response.json()["task_id"], timeout=60)


@pytest.mark.parametrize(
    "config",
    [
        {"base_url": "{attacker}"},
        {"provider": "openai", "base_url": "{attacker}"},
        {"provider": "default", "base_url": "{attacker}"},
        {"provider": "second", "base_url": "{attacker}"},
        {"provider": "nonexistent"},
        {"base_url": "{attacker}", "api_key": "dev-own-key"},  # loopback: refused by the egress rules
        {"base_url": "http://127.0.0.1:5432/v1", "api_key": "dev-own-key"},
        {"base_url": "http://169.254.169.254/latest", "api_key": "dev-own-key"},
        {"base_url": "http://2130706433:6379/v1", "api_key": "dev-own-key"},
    ],
)
async def test_developer_cannot_point_an_agent_elsewhere(
    client: httpx.AsyncClient, login: Login, upstreams: tuple[FakeLLMServer, ...], config: dict[str, str]
) -> None:
    attacker = upstreams[2]
    developer = await login("developer")
    body = {k: v.format(attacker=attacker.base_url) for k, v in config.items()}
    response = await client.post(
        "/api/v2/agents", json={"name": unique("evil"), "type": "t", "config": body}, headers=developer
    )
    assert response.status_code == 422, response.text


async def test_platform_key_never_reaches_an_agents_own_upstream(
    client: httpx.AsyncClient, app: FastAPI, login: Login, pool: WorkerPool, upstreams: tuple[FakeLLMServer, ...]
) -> None:
    platform, second, attacker = upstreams
    attacker_calls = len(attacker.authorizations)
    developer = await login("developer")
    # The default and a named admin provider each get their own key.
    default = await create_agent(client, developer, unique("default"), config={"cache": False})
    named = await create_agent(client, developer, unique("named"), config={"provider": "second", "cache": False})
    assert (await _assign(client, developer, default["id"]))["status"] == "completed"
    assert (await _assign(client, developer, named["id"]))["status"] == "completed"
    assert _keys(platform) == {f"Bearer {PLATFORM_KEY}"}
    assert _keys(second) == {f"Bearer {SECOND_KEY}"}
    # An agent row that slipped past validation (written before this rule, or straight into the
    # database) pointing at the attacker without a key of its own: the run refuses to call it.
    async with app.state.ctx.db.session() as s:
        row = Agent(name=unique("legacy"), type="t", config={"provider": "openai", "base_url": attacker.base_url})
        s.add(row)
        await s.commit()
        legacy_id = row.id
    failed = await _assign(client, developer, legacy_id)
    assert failed["status"] == "failed"
    assert len(attacker.authorizations) == attacker_calls
    assert f"Bearer {PLATFORM_KEY}" not in attacker.authorizations
    assert PLATFORM_KEY not in failed["error_message"]


async def test_an_allowed_custom_upstream_gets_only_the_agents_own_key(
    settings_factory: Callable[..., Settings], upstreams: tuple[FakeLLMServer, ...]
) -> None:
    """When an admin allows a custom host, the agent's key goes there, the platform's never."""
    platform, _, attacker = upstreams
    settings = settings_factory(
        llm_base_url=platform.base_url,
        llm_api_key=PLATFORM_KEY,
        llm_custom_allowed_hosts=["127.0.0.1"],
        llm_custom_allowed_ports=[attacker.port],
        egress_allowed_networks=["127.0.0.1/32"],
        llm_max_retries=0,
    )
    from agentlightning.agents.llm import ChatMessage, LLMRequest

    factory = ProviderFactory(settings)
    try:
        provider = factory.for_agent({"base_url": attacker.base_url, "api_key": "dev-own-key"})
        await provider.complete(LLMRequest(messages=[ChatMessage(role="user", content="hi")], model="m"))
    finally:
        await factory.aclose()
    assert set(attacker.authorizations) == {"Bearer dev-own-key"}


async def test_agent_key_is_write_only_and_dropped_when_the_upstream_moves(
    client: httpx.AsyncClient, login: Login, settings: Settings, upstreams: tuple[FakeLLMServer, ...]
) -> None:
    admin = await login("admin")
    settings.llm_custom_allowed_hosts = ["*.example.com"]
    agent = await create_agent(
        client, admin, unique("own"), config={"base_url": "https://llm.example.com/v1", "api_key": "dev-own-key"}
    )
    assert agent["config"]["api_key"] == "********"
    reader = await login("user")
    shown = (await client.get(f"/api/v2/agents/{agent['id']}", headers=reader)).json()["data"]
    assert "dev-own-key" not in str(shown)
    # Moving the upstream without giving a new key: refused, the old key is not carried along.
    moved = await client.put(
        f"/api/v2/agents/{agent['id']}", json={"config": {"base_url": "https://other.example.com/v1"}}, headers=admin
    )
    assert moved.status_code == 422, moved.text
