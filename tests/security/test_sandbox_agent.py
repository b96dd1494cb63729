"""A plain user's task drives the python tool with hostile code (the scripted LLM follows the
task's instructions): the answer holds none of the server's files, environment or processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from agentlightning.agents.pool import WorkerPool
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task
from tests.security.agent_stack import fake_llm, settings  # noqa: F401 - fixtures

Login = Callable[[str], Awaitable[dict[str, str]]]
SECRET = "agl-server-env-secret-42"

HOSTILE = (
    "import builtins, glob, os, sys\n"
    "found = []\n"
    "for p in ['/etc/passwd', '/proc/1/environ', '/proc/self/environ', '/work']:\n"
    "    try: found.append(open(p, 'rb').read()[:200])\n"
    "    except Exception as e: found.append(type(e).__name__)\n"
    "for p in glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ'):\n"
    "    try: found.append(open(p, 'rb').read()[:300])\n"
    "    except Exception as e: found.append(type(e).__name__)\n"
    "found.append(dict(os.environ))\n"
    "print(found)"
)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_hostile_task_through_the_agent(
    client: httpx.AsyncClient,
    login: Login,
    pool: WorkerPool,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    admin = await login("admin")
    agent = await create_agent(client, admin, unique("py"), config={"tools": ["python"], "cache": False})
    user = await login("user")
    response = await client.post(
        "/api/v2/agents/assign", json={"task": f"python: {HOSTILE}", "agent_id": agent["id"]}, headers=user
    )
    task = await wait_for_task(client, user, response.json()["task_id"], timeout=60)
    assert task["status"] == "completed", task
    answer = task["result"]["answer"]
    assert "FileNotFoundError" in answer
    assert SECRET not in answer and "root:x:0" not in answer
    assert "pytest" not in answer and "DATABASE_URL" not in answer
