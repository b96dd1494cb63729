"""Fixtures of the RL integration tests: fast manager settings and a running manager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from agentlightning.core.context import AppContext
from agentlightning.rl.manager import ExperimentManager
from agentlightning.settings import Settings
from agentlightning.storage.models import RLExperiment

ALLOWED_ENV_MODULES = ["agentlightning.rl.classic.examples"]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Test settings with a quick RL manager: short poll, report and lease intervals."""
    return settings_factory(
        rl_artifacts_dir=str(tmp_path / "rl"),
        rl_poll_interval_seconds=0.1,
        rl_report_interval_seconds=0.2,
        rl_lease_seconds=30,
        rl_max_concurrent_sessions=2,
        rl_shutdown_grace_seconds=10,
        rl_env_allowed_modules=ALLOWED_ENV_MODULES,
    )


async def _retire_leftovers(ctx: AppContext) -> None:
    """The PostgreSQL database is shared by the session: leave no experiment for the next test's manager."""
    async with ctx.db.session() as session:
        await session.execute(
            update(RLExperiment)
            .where(RLExperiment.status.in_(("created", "queued", "running")))
            .values(status="failed", error="left over by a test")
        )
        await session.commit()


@pytest.fixture
async def manager(ctx: AppContext) -> AsyncIterator[ExperimentManager]:
    """An experiment manager running on the app's context (as ``serve`` would start it)."""
    await _retire_leftovers(ctx)
    service = ExperimentManager(ctx.settings)
    await service.start(ctx)
    ctx.services["rl"] = service
    yield service
    ctx.services.pop("rl", None)
    await service.stop()
    await _retire_leftovers(ctx)


@pytest.fixture
async def developer(login: Callable[[str], Any]) -> dict[str, str]:
    """Headers of a developer (``rl:*``)."""
    return await login("developer")


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
