"""Workflows across real processes on PostgreSQL + Redis: ``agentlightning serve`` (engine, no
in-process workers), an ``agentlightning worker`` process and the scripted LLM.

The sample workflow (a parallel pair, a condition, a fan-out and a fan-in; seven steps) is started
over HTTP; the server is killed with SIGKILL once some steps have finished and others have not, and
started again.  The run must complete with the right output, and every agent step must have had
exactly one task (its idempotency key ``wf:{run}:{step}:{attempt}``): nothing finished before the
kill ran again.  An invalid definition is refused over the same server (the hostile-user cases are in
``tests/integration/workflows``, on PostgreSQL too).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.server import ServerProcess, admin_with_agent, start_worker
from tests.fake_llm_server import FakeLLMServer
from tests.integration.workflows.helpers import SAMPLE_INPUT, check_sample_output, sample_definition
from tests.services import create_postgres_database, drop_postgres_database

ADMIN_PASSWORD = "e2e-admin-password-long"


async def _step_states(dsn: str, run_id: int) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT step_id, status FROM workflow_steps WHERE run_id = $1 AND item = -1", run_id)
        return {r["step_id"]: r["status"] for r in rows}
    finally:
        await conn.close()


async def _tasks_per_step(dsn: str, run_id: int) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT idempotency_key, status FROM tasks WHERE idempotency_key LIKE $1", f"%:wf:{run_id}:%"
        )
    finally:
        await conn.close()
    found: dict[str, list[str]] = {}
    for row in rows:
        step = row["idempotency_key"].split(f"wf:{run_id}:", 1)[1].rsplit(":", 1)[0]
        found.setdefault(step, []).append(row["status"])
    return found


async def _wait_run(http: httpx.AsyncClient, headers: dict[str, str], run_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = (await http.get(f"/api/v2/workflow-runs/{run_id}", headers=headers)).json()["data"]
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run}"
        await asyncio.sleep(0.2)


async def _start(server: ServerProcess, dsn: str) -> tuple[int, dict[str, str], str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        _, headers, agent = await admin_with_agent(http, ADMIN_PASSWORD, "wfe2e", max_concurrency=8)
        created = await http.post(
            "/api/v2/workflows",
            json={"name": f"wf_{uuid.uuid4().hex[:6]}", **sample_definition(agent)},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        workflow_id = created.json()["data"]["id"]
        started = await http.post(
            f"/api/v2/workflows/{workflow_id}/execute", json={"input": SAMPLE_INPUT}, headers=headers
        )
        assert started.status_code == 202, started.text
        run_id = int(started.json()["data"]["run_id"])
    # Kill once some steps finished and others have not.
    deadline = time.monotonic() + 120
    while True:
        states = await _step_states(dsn, run_id)
        finished = [s for s, v in states.items() if v in ("completed", "skipped")]
        if len(finished) >= 2 and states.get("final") != "completed":
            return run_id, headers, agent
        assert time.monotonic() < deadline, f"run {run_id} never got going: {states}"
        await asyncio.sleep(0.05)


async def _finish(server: ServerProcess, dsn: str, run_id: int, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        run = await _wait_run(http, headers, run_id, timeout=180)
        # Invalid definitions: a cycle and an unknown agent, each named by its field.
        bad = await http.post(
            "/api/v2/workflows",
            json={
                "name": "bad_wf",
                "steps": [
                    {"id": "a", "kind": "agent", "agent": "no_such_agent", "task": "x", "depends_on": ["b"]},
                    {"id": "b", "kind": "tool", "tool": "calculator", "args": {"expression": "1"}, "depends_on": ["a"]},
                ],
            },
            headers=headers,
        )
    return {"run": run, "bad": bad}


@pytest.mark.slow
def test_server_killed_mid_run_resumes_without_rerunning_steps(tmp_path: Path, redis_url: str) -> None:
    database = create_postgres_database("agl_e2e_wf")
    dsn = database.replace("postgresql+asyncpg://", "postgresql://")
    with FakeLLMServer(delay_s=0.4) as llm:
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "AGL_EVENTS_PREFIX": f"aglwf{uuid.uuid4().hex[:6]}",
            "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AGENT_WORKERS_IN_API": "false",
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": "fake-model",
            "AGENT_TASK_LEASE_SECONDS": "6",
            "AGENT_POLL_INTERVAL_SECONDS": "0.2",
            "WORKFLOW_POLL_INTERVAL_SECONDS": "0.2",
            "WORKFLOW_LEASE_SECONDS": "3",
            "RATE_LIMIT_DEFAULT": "100000/minute",
            "RATE_LIMIT_ANONYMOUS": "100000/minute",
        }
        server = ServerProcess(env, tmp_path / "server1.log")
        restarted = ServerProcess(env, tmp_path / "server2.log")
        worker = None
        try:
            server.start()
            worker = start_worker(server.env, tmp_path / "worker.log", "--min", "2", "--max", "4", timeout=60)
            run_id, headers, _ = asyncio.run(_start(server, dsn))
            assert server.process is not None
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            before = asyncio.run(_step_states(dsn, run_id))
            restarted.start()
            outcome = asyncio.run(_finish(restarted, dsn, run_id, headers))
            tasks = asyncio.run(_tasks_per_step(dsn, run_id))
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
            server.stop()
            restarted.stop()
            drop_postgres_database(database)

    run = outcome["run"]
    assert run["status"] == "completed", (run["error"], run["steps"], restarted.log()[-3000:])
    assert any(v == "completed" for v in before.values()) and before.get("final") != "completed", before
    check_sample_output(run["output"])
    # Each agent step (and fan-out item) had exactly one task, which completed: nothing ran twice.
    assert tasks == {s: ["completed"] for s in ("plan", "big", "final", "fan[0]", "fan[1]", "fan[2]")}, tasks
    assert all(s["attempts"] == 1 for s in run["steps"] if s["kind"] == "agent" and s["status"] == "completed")
    bad = outcome["bad"]
    assert bad.status_code == 422, bad.text
    fields = {e["field"] for e in bad.json()["error"]["details"]["errors"]}
    assert "body.steps.0.agent" in fields
