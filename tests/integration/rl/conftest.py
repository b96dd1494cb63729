"""Fixtures of the RL integration tests: fast manager settings and a running manager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentlightning.core.context import AppContext
from agentlightning.rl.manager import ExperimentManager
from agentlightning.settings import Settings
from tests.integration.rl.helpers import running_manager

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


@pytest.fixture
async def manager(ctx: AppContext) -> AsyncIterator[ExperimentManager]:
    """An experiment manager running on the app's context (as ``serve`` would start it)."""
    async with running_manager(ctx) as service:
        yield service


@pytest.fixture
async def developer(login: Callable[[str], Any]) -> dict[str, str]:
    """Headers of a developer (``rl:*``)."""
    return await login("developer")
