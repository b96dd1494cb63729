"""Fixtures of the dashboard tests: a live API on PostgreSQL + Redis with some data in it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agentlightning.agents.pool import WorkerPool
from agentlightning.auth.service import create_user
from agentlightning.rl.experiments import ExperimentService
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task
from tests.integration.scripted_stack import backend, fake_llm, settings  # noqa: F401 - fixtures

PASSWORD = "dashboard-password-1"


@dataclass
class Accounts:
    """A live API with an admin and a developer (password :data:`PASSWORD`)."""

    url: str
    admin: str
    developer: str


@pytest.fixture
async def accounts(app: FastAPI, live_url: str) -> Accounts:
    """A live API with two accounts and nothing else."""
    admin_name, developer_name = unique("dash-admin"), unique("dash-dev")
    await create_user(app.state.ctx, admin_name, PASSWORD, "admin")
    await create_user(app.state.ctx, developer_name, PASSWORD, "developer")
    return Accounts(url=f"http://{live_url}", admin=admin_name, developer=developer_name)


@dataclass
class Seeded:
    """What the seeded platform holds, for the pages' checks."""

    url: str
    admin: str
    developer: str
    agent_name: str
    task_id: int
    knowledge_title: str
    experiment_name: str


@pytest.fixture
async def seeded(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts, login: Callable[[str], Awaitable[dict[str, str]]]
) -> AsyncIterator[Seeded]:
    """A live API with an admin and a developer, an agent with finished tasks, a knowledge item
    and an RL experiment with reward points and a checkpoint."""
    ctx = app.state.ctx
    headers = await login("admin")
    agent = await create_agent(client, headers, unique("dash-agent"), config={"cache": False})
    pool = WorkerPool(ctx.settings)
    await pool.start(ctx)
    try:
        task_ids = []
        for text in ("say hello", "say goodbye"):
            assign = await client.post(
                "/api/v2/agents/assign", json={"task": text, "agent_id": agent["id"]}, headers=headers
            )
            assert assign.status_code == 202, assign.text
            task_ids.append(assign.json()["task_id"])
        for task_id in task_ids:
            task = await wait_for_task(client, headers, task_id, timeout=120)
            assert task["status"] == "completed", task
    finally:
        await pool.stop()
    title = unique("Lightning runbook")
    item = await client.post(
        "/api/v2/knowledge",
        json={"title": title, "content": "Restart the worker pool when the queue stalls.", "category": "ops"},
        headers=headers,
    )
    assert item.status_code == 201, item.text
    experiment_name = unique("dash-ppo")
    created = await client.post(
        "/api/v2/rl/experiments",
        json={"name": experiment_name, "algorithm": "ppo", "environment": "CartPole-v1", "total_timesteps": 2048},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    updates: list[dict[str, Any]] = [
        {"type": "progress", "timesteps": step, "total_timesteps": 2048, "ep_rew_mean": reward}
        for step, reward in ((512, 18.0), (1024, 31.5), (2048, 57.25))
    ]
    updates.append({"type": "checkpoint", "timesteps": 2048, "final": True, "path": "/tmp/dash/ckpt_2048.zip"})
    await ExperimentService(ctx).record_updates(created.json()["data"]["id"], updates)
    yield Seeded(
        url=accounts.url,
        admin=accounts.admin,
        developer=accounts.developer,
        agent_name=agent["name"],
        task_id=task_ids[0],
        knowledge_title=title,
        experiment_name=experiment_name,
    )
