"""``agentlightning rl suite install|list|show`` against a real database (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentlightning.rl.cli import app
from tests.helpers import cli_environment


@pytest.fixture
def cli_env(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    with cli_environment(
        backend,
        request,
        monkeypatch,
        RL_ARTIFACTS_DIR=str(tmp_path / "rl"),
        RL_SUITE_EMBED_KNOWLEDGE="false",
        COLUMNS="250",
    ):
        yield


def test_install_list_show(cli_env: None, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["suite", "install"])
    assert result.exit_code == 0, result.output
    assert "suite builtin:" in result.output and "SQL_DATA_SOURCES=" in result.output
    assert (tmp_path / "rl" / "suite" / "builtin_shop.sqlite").is_file()
    again = runner.invoke(app, ["suite", "install"])
    assert again.exit_code == 0 and "(0 new, 0 updated, 0 removed)" in again.output, again.output

    listed = runner.invoke(app, ["suite", "list", "--split", "heldout", "--type", "arithmetic", "--limit", "3"])
    assert listed.exit_code == 0, listed.output
    assert "arith-0012" in listed.output and "arith-0001" not in listed.output

    shown = runner.invoke(app, ["suite", "show", "arith-0001"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["verifier"]["type"] == "numeric"

    assert runner.invoke(app, ["suite", "show", "nope-0000"]).exit_code == 2
    assert runner.invoke(app, ["suite", "install", "--suite", "other"]).exit_code == 2
    assert runner.invoke(app, ["suite", "list", "--split", "test"]).exit_code != 0
