"""Fixtures of the optimiser and suite tests: artifacts in a temporary directory, no embedding model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentlightning.settings import Settings


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Test settings whose RL artifacts (the suite's sample database) live in the test's directory."""
    return settings_factory(rl_artifacts_dir=str(tmp_path / "rl"), rl_suite_embed_knowledge=False)
