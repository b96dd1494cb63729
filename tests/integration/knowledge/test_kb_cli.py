"""``agentlightning kb import`` as a new user sees it: every row of the summary names its file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentlightning.knowledge.cli import app, display_names
from tests.helpers import cli_environment


@pytest.fixture
def cli_env(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    with cli_environment(
        backend,
        request,
        monkeypatch,
        KNOWLEDGE_INDEX_DIR=str(tmp_path / "index"),
        COLUMNS="80",  # a narrow terminal: long paths must not be cut to "…"
    ):
        yield


def test_each_row_names_its_file_in_a_narrow_terminal(cli_env: None, tmp_path: Path) -> None:
    root = tmp_path / "docs" / "a-rather-long-folder-name" / "and-another-one"
    for part, text in (("guides", "Restart the pool."), ("faq", "Rotate the keys.")):
        (root / part).mkdir(parents=True)
        (root / part / "readme.md").write_text(f"# {part}\n\n{text} {tmp_path.name}\n")
    result = CliRunner().invoke(app, ["import", str(tmp_path / "docs"), "--no-embed"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "readme.md" in line and "│" in line]
    assert len(rows) == 2, result.output
    names = {line.split("│")[1].strip() for line in rows}
    assert names == {
        "guides/readme.md",
        "faq/readme.md",
    }, result.output
    assert "…" not in "".join(rows)
    assert "1 │" in rows[0]  # the counts follow on the same row


def test_display_names_are_short_and_distinct() -> None:
    assert display_names(["/x/a/readme.md", "/x/b/readme.md"]) == {
        "/x/a/readme.md": "a/readme.md",
        "/x/b/readme.md": "b/readme.md",
    }
    assert display_names(["/x/a/one.md"]) == {"/x/a/one.md": "one.md"}
    assert display_names(["/x/a/one.md", "/x/a/deeper/two.md"])["/x/a/deeper/two.md"] == "deeper/two.md"
    assert display_names([]) == {}
