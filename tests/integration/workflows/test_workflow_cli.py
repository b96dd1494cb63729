"""``agentlightning workflow run FILE`` against a live server: creates the workflow, runs it with
``--input`` values, follows it to the end and prints the output; an unchanged file makes no new
version, a changed one does; an invalid file prints the fields the server names."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from agentlightning.agents.pool import WorkerPool
from agentlightning.workflows.engine import WorkflowEngine
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The CLI talks HTTP; one storage backend is enough here."""
    return str(request.param)


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentlightning.cli",
        "workflow",
        "run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_workflow_run_command(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pool: WorkerPool,
    engine: WorkflowEngine,
    live_url: str,
    tmp_path: Path,
) -> None:
    agent = await create_agent(client, admin, unique("cliagent"), config={"cache": False})
    name = unique("cliwf")
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""
steps:
  - id: greet
    kind: agent
    agent: {agent["name"]}
    task: "hello {{{{ input.who }}}}"
  - id: sum
    kind: tool
    tool: calculator
    args: {{expression: "{{{{ input.n }}}} + 1"}}
output: "{{{{ steps.greet }}}} / {{{{ steps.sum.result }}}}"
"""
    )
    token = admin["Authorization"].split(" ", 1)[1]
    common = ["--url", f"http://{live_url}", "--token", token, "--interval", "0.2"]
    code, out, err = await _cli(str(path), "--input", "who=world", "--input", "n=41", *common)
    assert code == 0, (out, err)
    assert '"Answer: hello world / 42"' in out and "completed" in out
    again = await _cli(str(path), "--input-json", '{"who": "again", "n": 1}', *common)
    assert again[0] == 0 and "Answer: hello again / 2" in again[1], again
    workflow = (await client.get(f"/api/v2/workflows/{name}", headers=admin)).json()["data"]
    assert workflow["version"] == 1  # the same file: no new version
    path.write_text(path.read_text().replace("hello", "hi"))
    changed = await _cli(str(path), "-i", "who=you", "-i", "n=2", *common)
    assert changed[0] == 0 and "Answer: hi you / 3" in changed[1], changed
    assert (await client.get(f"/api/v2/workflows/{name}", headers=admin)).json()["data"]["version"] == 2
    path.write_text("steps:\n  - {id: a, kind: tool, tool: nope}\n")
    bad = await _cli(str(path), *common)
    assert bad[0] == 2 and "body.steps.0.tool" in bad[2], bad
