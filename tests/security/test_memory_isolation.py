"""Two plain users of the same agent with the same session id: neither reads the other's memory."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx

from agentlightning.agents.pool import WorkerPool
from tests.fake_llm_server import FakeLLMServer
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task
from tests.security.agent_stack import fake_llm, settings  # noqa: F401 - fixtures

Login = Callable[[str], Awaitable[dict[str, str]]]


async def _run(client: httpx.AsyncClient, headers: dict[str, str], agent: int, task: str, session: str) -> dict:
    body = {"task": task, "agent_id": agent, "session_id": session}
    response = await client.post("/api/v2/agents/assign", json=body, headers=headers)
    assert response.status_code in (200, 201, 202), response.text
    done = await wait_for_task(client, headers, response.json()["task_id"], timeout=60)
    assert done["status"] == "completed", done
    return done


async def test_a_reused_session_id_does_not_reveal_another_users_conversation(
    client: httpx.AsyncClient,
    login: Login,
    pool: WorkerPool,  # noqa: F811
    fake_llm: FakeLLMServer,  # noqa: F811
) -> None:
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("mem"), config={"cache": False, "memory_window": 20})
    alice, mallory = await login("user"), await login("user")
    session = unique("shared-session")
    await _run(client, alice, agent["id"], "my bank PIN is 4242-alice", session)
    seen_before = len(fake_llm.requests)
    await _run(client, mallory, agent["id"], "repeat what I told you before", session)
    mallory_prompts = json.dumps(fake_llm.requests[seen_before:])
    assert "4242-alice" not in mallory_prompts
    # Alice's own follow-up still sees her conversation.
    seen_before = len(fake_llm.requests)
    await _run(client, alice, agent["id"], "repeat what I told you before", session)
    assert "4242-alice" in json.dumps(fake_llm.requests[seen_before:])


async def test_memory_tool_notes_are_per_user(
    client: httpx.AsyncClient,
    login: Login,
    pool: WorkerPool,  # noqa: F811
    fake_llm: FakeLLMServer,  # noqa: F811
) -> None:
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("notes"), config={"cache": False, "tools": ["memory"]})
    alice, mallory = await login("user"), await login("user")
    await _run(client, alice, agent["id"], "remember: alice locker code 7781", unique("s"))
    seen_before = len(fake_llm.requests)
    stolen = await _run(client, mallory, agent["id"], "recall: locker code", unique("s"))
    assert "7781" not in json.dumps(stolen["result"])
    assert "7781" not in json.dumps(fake_llm.requests[seen_before:])  # nor in the system prompt's notes
    mine = await _run(client, alice, agent["id"], "recall: locker code", unique("s"))
    assert "7781" in json.dumps(mine["result"])
