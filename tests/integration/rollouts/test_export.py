"""``agentlightning rl export``: rollouts -> JSON Lines / Parquet that ``datasets`` loads and TRL
takes as a conversational dataset; VERL's parquet layout; on both backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from agentlightning.agents.pool import WorkerPool
from agentlightning.core.context import AppContext
from agentlightning.rl.cli import app as rl_cli
from agentlightning.rollouts.export import export_rollouts
from agentlightning.rollouts.schemas import RolloutFilters
from agentlightning.settings import Settings, get_settings
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task


def _load(kind: str, path: Path, cache: Path) -> Any:
    from datasets import load_dataset

    return load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


async def _populate(client: httpx.AsyncClient, admin: dict[str, str]) -> tuple[dict[str, Any], int, str]:
    agent = await create_agent(client, admin, unique("export"), config={"tools": ["calculator"], "cache": False})
    assign = await client.post(
        "/api/v2/agents/assign",
        json={
            "task": "calculate: (3 + 4) * 2 ** 10",
            "agent_id": agent["id"],
            "context": {"verifier": {"type": "numeric", "expected": 7168}, "task_type": "math"},
        },
        headers=admin,
    )
    task_id = assign.json()["task_id"]
    assert (await wait_for_task(client, admin, task_id))["status"] == "completed"
    sdk_id = unique("sdk")
    ingest = await client.post(
        "/api/v2/rollouts",
        json={
            "rollouts": [
                {
                    "id": sdk_id,
                    "agent_id": agent["id"],
                    "input": {
                        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
                    },
                    "output": "Hello!",
                    "rewards": [{"value": 0.25}],
                },
                {"id": unique("empty"), "agent_id": agent["id"]},  # no conversation: skipped
            ]
        },
        headers=admin,
    )
    assert ingest.status_code == 200, ingest.text
    return agent, task_id, sdk_id


@pytest.mark.slow
async def test_export_round_trips_into_trl_and_verl(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pool: WorkerPool,
    ctx: AppContext,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trl.data_utils import is_conversational

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    agent, task_id, sdk_id = await _populate(client, admin)

    # The CLI (its own context, the same database), TRL rows as JSON Lines.
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("COLUMNS", "250")  # Rich must not wrap the summary line
    get_settings.cache_clear()
    out = tmp_path / "trl.jsonl"
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke, rl_cli, ["export", str(out), "--agent", agent["name"], "--format", "trl"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "wrote 2 row(s)" in result.output and "1 rollout(s) without a conversation skipped" in result.output
    rows = {json.loads(line)["rollout_id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert set(rows) == {f"task-{task_id}", sdk_id}
    task_row = rows[f"task-{task_id}"]
    assert [m["role"] for m in task_row["prompt"]] == ["system", "user", "assistant", "tool"]  # multi-turn kept
    assert task_row["prompt"][2]["tool_calls"][0]["function"]["name"] == "calculator"
    assert task_row["completion"][0]["role"] == "assistant" and "7168" in task_row["completion"][0]["content"]
    assert task_row["reward"] == 1.0 and task_row["agent_id"] == agent["id"]
    assert rows[sdk_id]["completion"] == [{"role": "assistant", "content": "Hello!"}]

    dataset = _load("json", out, tmp_path / "hf")
    assert {"prompt", "completion", "reward", "rollout_id", "agent_id"} <= set(dataset.column_names)
    assert len(dataset) == 2 and all(is_conversational(example) for example in dataset)

    # Parquet, through the service (filters like the list API).
    parquet = tmp_path / "trl.parquet"
    exported = await export_rollouts(ctx, parquet, filters=RolloutFilters(agent_id=agent["id"], min_reward=0.5))
    assert exported.rows == 1 and exported.skipped == 0
    dataset = _load("parquet", parquet, tmp_path / "hf")
    assert dataset[0]["rollout_id"] == f"task-{task_id}" and is_conversational(dataset[0])
    assert [m["role"] for m in dataset[0]["prompt"]][:2] == ["system", "user"]

    # VERL's layout.
    verl = tmp_path / "verl.parquet"
    exported = await export_rollouts(ctx, verl, fmt="verl", filters=RolloutFilters(agent_id=agent["id"]))
    assert exported.rows == 2
    table = pq.read_table(verl)
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    verl_rows = {r["extra_info"]["rollout_id"]: r for r in table.to_pylist()}
    math = verl_rows[f"task-{task_id}"]
    assert math["ability"] == "math" and math["reward_model"] == {"style": "rule", "ground_truth": "7168"}
    assert math["data_source"] == f"agentlightning/agent-{agent['id']}" and math["extra_info"]["reward"] == 1.0
    assert verl_rows[sdk_id]["reward_model"]["style"] == "model"
    assert _load("parquet", verl, tmp_path / "hf").column_names == table.column_names


def test_export_refuses_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["--format", "csv"], ["--file-format", "xml"], ["--since", "yesterday"], ["--source", "mail"]):
        result = runner.invoke(rl_cli, ["export", str(tmp_path / "x.jsonl"), *args])
        assert result.exit_code != 0, (args, result.output)
