"""``/api/v2/system/status`` rolls component states up in one vocabulary: a healthy server with its
background services running is ``healthy`` with every component ``ok``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agentlightning.api.app import create_app
from agentlightning.core.system_status import component_state, roll_up
from agentlightning.settings import Settings
from tests.helpers import login_as


@pytest.fixture
async def serving_client(settings_factory: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Any]:
    settings = settings_factory(
        agl_run_services=True, knowledge_index_warmup=False, rl_artifacts_dir=str(tmp_path / "rl")
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield app, client


async def test_healthy_server_with_services_is_healthy(serving_client: Any) -> None:
    app, client = serving_client
    headers = await login_as(client, app, "admin")
    data = (await client.get("/api/v2/system/status", headers=headers)).json()["data"]
    assert set(app.state.ctx.services) >= {"rl"}, app.state.ctx.services
    states = {name: c["status"] for name, c in data["components"].items()}
    assert all(state == "ok" for state in states.values()), states
    assert data["status"] == "healthy", states


def test_one_vocabulary_of_component_states() -> None:
    assert component_state({"status": "up"}) == {"status": "ok", "state": "up"}
    assert component_state({"status": "ok"}) == {"status": "ok"}
    assert component_state({"status": "warming"})["status"] == "starting"
    assert component_state({"status": "stopped"})["status"] == "down"
    assert component_state({"status": "something-new"})["status"] == "degraded"
    assert roll_up([{"status": "ok"}, {"status": "starting"}]) == "healthy"
    assert roll_up([{"status": "ok"}, {"status": "down"}]) == "degraded"
    assert roll_up([{"status": "degraded"}]) == "degraded"
