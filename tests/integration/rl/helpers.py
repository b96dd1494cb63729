"""Helpers of the RL tests: tiny experiment bodies, waiting on an experiment, clearing leftovers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from sqlalchemy import update

from agentlightning.core.context import AppContext
from agentlightning.rl.manager import ExperimentManager
from agentlightning.settings import Settings
from agentlightning.storage.models import RLExperiment


async def retire_leftovers(ctx: AppContext) -> None:
    """The PostgreSQL database is shared by the session: leave no experiment for the next test's manager."""
    async with ctx.db.session() as session:
        await session.execute(
            update(RLExperiment)
            .where(RLExperiment.status.in_(("created", "queued", "running")))
            .values(status="failed", error="left over by a test")
        )
        await session.commit()


@contextlib.asynccontextmanager
async def running_manager(ctx: AppContext) -> AsyncIterator[ExperimentManager]:
    """An experiment manager running on the app's context (as ``serve`` would start it), on a
    database cleared of other tests' experiments before and after."""
    await retire_leftovers(ctx)
    service = ExperimentManager(ctx.settings)
    await service.start(ctx)
    ctx.services["rl"] = service
    try:
        yield service
    finally:
        ctx.services.pop("rl", None)
        await service.stop()
        await retire_leftovers(ctx)


async def wait_for(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    experiment_id: int,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Poll the experiment until ``predicate`` holds (fails after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get(f"/api/v2/rl/experiments/{experiment_id}", headers=headers)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        if predicate(data):
            return data
        assert loop.time() < deadline, f"timed out; last state: {data['status']} {data['metrics']} {data['error']}"
        await asyncio.sleep(0.2)


def tiny(algorithm: str, name: str, **overrides: Any) -> dict[str, Any]:
    """An experiment body with a budget of a few hundred to a few thousand steps."""
    from tests.unit.rl.helpers import tiny_config

    return {"name": name, **tiny_config(algorithm, **overrides)}


def auto_rl_settings(
    settings_factory: Callable[..., Settings], llm_base_url: str, tmp_path: Any, **overrides: Any
) -> Settings:
    """Settings of the Auto-RL tests: a quick manager, agents served by a scripted model at ``llm_base_url``."""
    values: dict[str, Any] = {
        "llm_base_url": llm_base_url,
        "llm_model": "fake-model",
        "rl_artifacts_dir": str(tmp_path / "rl"),
        "rl_poll_interval_seconds": 0.1,
        "rl_lease_seconds": 30,
        "auto_rl_eval_concurrency": 4,
    }
    return settings_factory(**(values | overrides))


async def create_auto_rl_agent(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, system_prompt: str
) -> dict[str, Any]:
    """A ``math`` agent at temperature 0 with ``system_prompt``, created through the API."""
    response = await client.post(
        "/api/v2/agents",
        json={"name": name, "type": "math", "config": {"system_prompt": system_prompt, "temperature": 0.0}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data
