"""Workflows over the API on SQLite and PostgreSQL + Redis: a DAG with a parallel pair, a condition,
a fan-out and a fan-in runs to the right output through the task queue; invalid definitions are
422s naming the field; versions; cancellation; what a plain user may not do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from agentlightning.agents.pool import WorkerPool
from agentlightning.core.context import AppContext
from agentlightning.storage.models import Rollout, Task, TaskEvent
from agentlightning.workflows.engine import WorkflowEngine
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent
from tests.integration.workflows.helpers import SAMPLE_INPUT, check_sample_output, sample_definition, wait_for_run

Login = Callable[[str], Awaitable[dict[str, str]]]


async def _workflow(
    client: httpx.AsyncClient, headers: dict[str, str], definition: dict[str, Any], **extra: Any
) -> Any:
    return await client.post("/api/v2/workflows", json={"name": unique("wf"), **definition, **extra}, headers=headers)


async def test_sample_workflow_runs_to_the_right_output(
    client: httpx.AsyncClient, admin: dict[str, str], pool: WorkerPool, engine: WorkflowEngine, ctx: AppContext
) -> None:
    agent = await create_agent(client, admin, unique("wfagent"), config={"cache": False})
    created = await _workflow(client, admin, sample_definition(agent["name"]))
    assert created.status_code == 201, created.text
    workflow = created.json()["data"]
    assert workflow["version"] == 1 and len(workflow["definition"]["steps"]) == 7
    started = await client.post(
        f"/api/v2/workflows/{workflow['id']}/execute", json={"input": SAMPLE_INPUT}, headers=admin
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["data"]["run_id"]
    run = await wait_for_run(client, admin, run_id)
    assert run["status"] == "completed", (run["error"], run["steps"])
    check_sample_output(run["output"])
    steps = {s["step_id"]: s for s in run["steps"]}
    assert steps["small"]["status"] == "skipped" and steps["check"]["output"] is True
    assert steps["calc"]["output"]["result"] == 42 and steps["fan"]["items"][2]["status"] == "completed"
    assert all(s["attempts"] == 1 for s in run["steps"] if s["status"] == "completed")
    assert steps["final"]["duration_ms"] is not None and steps["final"]["task_id"]
    # One task per agent step (plan, big, final, three fan-out items), each created once.
    async with ctx.db.session() as s:
        keys = [
            r[0]
            for r in await s.execute(select(Task.idempotency_key).where(Task.idempotency_key.like(f"%wf:{run_id}:%")))
        ]
        events = [
            r[0]
            for r in await s.execute(
                select(TaskEvent.event).where(TaskEvent.topic == "workflows").order_by(TaskEvent.id)
            )
        ]
    assert sorted(k.split(":", 1)[1] for k in keys) == sorted(
        f"wf:{run_id}:{s}:1" for s in ("plan", "big", "final", "fan[0]", "fan[1]", "fan[2]")
    )
    assert "workflow_started" in events and "workflow_completed" in events and events.count("step_completed") >= 6
    # The run is a rollout (source workflow); its agent steps' task rollouts nest under it.
    assert run["rollout_id"] == f"wf-run-{run_id}"
    async with ctx.db.session() as s:
        parent = await s.get(Rollout, run["rollout_id"])
        nested = (await s.execute(select(Rollout.source).where(Rollout.parent_id == run["rollout_id"]))).scalars().all()
    assert parent is not None and parent.source == "workflow" and parent.status == "completed"
    assert sorted(nested) == ["task"] * 6
    status = await client.get(f"/api/v2/workflows/{workflow['name']}/status", headers=admin)
    assert status.status_code == 200 and status.json()["data"]["run_id"] == run_id
    runs = await client.get(f"/api/v2/workflows/{workflow['id']}/runs", headers=admin)
    assert runs.json()["data"]["total"] == 1


async def test_invalid_definitions_are_422_naming_the_field(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    agent = await create_agent(client, admin, unique("wfagent"))
    name = agent["name"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {
                "steps": [
                    {"id": "a", "kind": "agent", "agent": name, "task": "x", "depends_on": ["b"]},
                    {"id": "b", "kind": "agent", "agent": name, "task": "y", "depends_on": ["a"]},
                ]
            },
            "body.steps.",
            "cycle",
        ),
        (
            {"steps": [{"id": "a", "kind": "agent", "agent": name, "task": "x", "depends_on": ["nope"]}]},
            "body.steps.0.depends_on.0",
            "nope",
        ),
        (
            {"steps": [{"id": "a", "kind": "agent", "agent": "no-such-agent", "task": "x"}]},
            "body.steps.0.agent",
            "no-such-agent",
        ),
        ({"steps": [{"id": "a", "kind": "tool", "tool": "no_such_tool"}]}, "body.steps.0.tool", "no_such_tool"),
        (
            {"steps": [{"id": "a", "kind": "agent", "agent": name, "task": "{{ input.x "}]},
            "body.steps.0.task",
            "syntax",
        ),
        (
            {
                "steps": [
                    {"id": "a", "kind": "agent", "agent": name, "task": "{{ steps.b }}"},
                    {"id": "b", "kind": "agent", "agent": name, "task": "x"},
                ]
            },
            "body.steps.0.task",
            "depend",
        ),
        ({"steps": [{"id": "a", "kind": "condition", "if": "1 +", "then": []}]}, "body.steps.0.if", "syntax"),
        ({"steps": [{"id": "a", "kind": "agent", "task": "x"}]}, "body.steps.0", "exactly one"),
        ({"steps": [{"id": "a", "kind": "teleport"}]}, "body.steps.0", ""),
        ({"steps": []}, "body.steps", ""),
    ]
    for definition, field, fragment in cases:
        response = await _workflow(client, admin, definition)
        assert response.status_code == 422, (definition, response.text)
        body = response.json()
        assert body["error"]["code"] == "VALIDATION_ERROR"
        errors = body["error"]["details"]["errors"]
        assert any(e["field"].startswith(field) and fragment in e["message"] for e in errors), (definition, errors)
    yaml_doc = f"steps:\n  - id: a\n    kind: agent\n    agent: {name}\n    task: hello {{{{ input.who }}}}\n"
    created = await client.post("/api/v2/workflows", json={"name": unique("wfyaml"), "yaml": yaml_doc}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["data"]["definition"]["steps"][0]["task"] == "hello {{ input.who }}"


async def test_update_makes_a_version_and_runs_keep_theirs(
    client: httpx.AsyncClient, admin: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin, unique("wfagent"))
    one = {"steps": [{"id": "a", "kind": "agent", "agent": agent["name"], "task": "v1"}]}
    workflow = (await _workflow(client, admin, one)).json()["data"]
    run = (await client.post(f"/api/v2/workflows/{workflow['id']}/execute", json={}, headers=admin)).json()["data"]
    two = {"steps": [{"id": "b", "kind": "tool", "tool": "calculator", "args": {"expression": "1+1"}}]}
    updated = await client.put(f"/api/v2/workflows/{workflow['id']}", json=two, headers=admin)
    assert updated.status_code == 200 and updated.json()["data"]["version"] == 2
    assert (await client.get(f"/api/v2/workflow-runs/{run['run_id']}", headers=admin)).json()["data"]["version"] == 1
    cancelled = await client.post(f"/api/v2/workflow-runs/{run['run_id']}/cancel", headers=admin)
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "cancelled"
    again = await client.post(f"/api/v2/workflow-runs/{run['run_id']}/cancel", headers=admin)
    assert again.status_code == 409
    deleted = await client.delete(f"/api/v2/workflows/{workflow['id']}", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["data"]["deleted"] is True
    assert (await client.get(f"/api/v2/workflows/{workflow['id']}", headers=admin)).status_code == 404


async def test_cancel_stops_pending_steps_and_their_tasks(
    client: httpx.AsyncClient, admin: dict[str, str], engine: WorkflowEngine, ctx: AppContext
) -> None:
    # No worker pool: the task stays pending until the run is cancelled.
    agent = await create_agent(client, admin, unique("wfagent"))
    definition = {
        "steps": [
            {"id": "a", "kind": "agent", "agent": agent["name"], "task": "wait"},
            {"id": "b", "kind": "agent", "agent": agent["name"], "task": "after", "depends_on": ["a"]},
        ]
    }
    workflow = (await _workflow(client, admin, definition)).json()["data"]
    run_id = (await client.post(f"/api/v2/workflows/{workflow['id']}/execute", headers=admin)).json()["data"]["run_id"]
    for _ in range(300):
        run = (await client.get(f"/api/v2/workflow-runs/{run_id}", headers=admin)).json()["data"]
        if run["steps"] and run["steps"][0]["task_id"]:
            break
        await __import__("asyncio").sleep(0.05)
    task_id = run["steps"][0]["task_id"]
    assert task_id
    cancelled = (await client.post(f"/api/v2/workflow-runs/{run_id}/cancel", headers=admin)).json()["data"]
    assert cancelled["status"] == "cancelled"
    assert {s["step_id"]: s["status"] for s in cancelled["steps"]} == {"a": "cancelled", "b": "cancelled"}
    task = (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]
    assert task["status"] == "cancelled"
    async with ctx.db.session() as s:
        assert (
            await s.scalar(select(func.count()).select_from(Task).where(Task.idempotency_key.like(f"%wf:{run_id}:b:%")))
            == 0
        )


async def test_a_plain_user_sees_only_shared_workflows_and_own_runs(
    client: httpx.AsyncClient, admin: dict[str, str], login: Login, engine: WorkflowEngine
) -> None:
    developer = await login("developer")
    user = await login("user")
    other = await login("user")
    definition = {"steps": [{"id": "a", "kind": "tool", "tool": "calculator", "args": {"expression": "2+3"}}]}
    private = (await _workflow(client, developer, definition)).json()["data"]
    shared = (await _workflow(client, developer, definition, visibility="shared")).json()["data"]
    # Users cannot create, change or delete workflows.
    assert (await _workflow(client, user, definition)).status_code == 403
    assert (await client.put(f"/api/v2/workflows/{shared['id']}", json=definition, headers=user)).status_code == 403
    assert (await client.delete(f"/api/v2/workflows/{shared['id']}", headers=user)).status_code == 403
    # A private workflow of someone else does not exist for them: no read, no run, no status.
    for method, path in (
        ("GET", f"/api/v2/workflows/{private['id']}"),
        ("POST", f"/api/v2/workflows/{private['id']}/execute"),
        ("GET", f"/api/v2/workflows/{private['id']}/status"),
        ("GET", f"/api/v2/workflows/{private['id']}/runs"),
    ):
        response = await client.request(method, path, headers=user)
        assert response.status_code == 404 and response.json()["error"]["code"] == "WORKFLOW_NOT_FOUND", (
            path,
            response.text,
        )
    listed = (await client.get("/api/v2/workflows", headers=user)).json()["data"]["items"]
    assert shared["id"] in {w["id"] for w in listed} and private["id"] not in {w["id"] for w in listed}
    # The shared one they may run; the run is theirs alone.
    started = await client.post(f"/api/v2/workflows/{shared['id']}/execute", json={"input": {}}, headers=user)
    assert started.status_code == 202, started.text
    run_id = started.json()["data"]["run_id"]
    run = await wait_for_run(client, user, run_id)
    assert run["status"] == "completed" and run["output"] == {"a": {"expression": "2+3", "result": 5}}
    for method, path in (
        ("GET", f"/api/v2/workflow-runs/{run_id}"),
        ("POST", f"/api/v2/workflow-runs/{run_id}/cancel"),
        ("GET", f"/api/v2/workflows/{shared['id']}/status?run_id={run_id}"),
    ):
        response = await client.request(method, path, headers=other)
        assert response.status_code == 404 and response.json()["error"]["code"] == "WORKFLOW_RUN_NOT_FOUND", path
    assert (await client.get(f"/api/v2/workflows/{shared['id']}/runs", headers=other)).json()["data"]["total"] == 0
    assert (await client.get(f"/api/v2/workflows/{shared['id']}/status", headers=other)).status_code == 404
    # The developer sees every run.
    assert (await client.get(f"/api/v2/workflow-runs/{run_id}", headers=developer)).status_code == 200


async def test_retries_failure_routes_and_sub_workflows(
    client: httpx.AsyncClient, admin: dict[str, str], engine: WorkflowEngine
) -> None:
    child = await _workflow(
        client,
        admin,
        {
            "steps": [
                {"id": "double", "kind": "tool", "tool": "calculator", "args": {"expression": "{{ input.x }} * 2"}}
            ],
            "output": "{{ steps.double.result }}",
        },
    )
    assert child.status_code == 201, child.text
    child_name = child.json()["data"]["name"]
    definition = {
        "steps": [
            {
                "id": "broken",
                "kind": "tool",
                "tool": "calculator",
                "args": {"expression": "1 / 0"},
                "retry": {"max_attempts": 2, "backoff_seconds": 0},
                "on_failure": "rescue",
            },
            {
                "id": "after_broken",
                "kind": "tool",
                "tool": "calculator",
                "args": {"expression": "1"},
                "depends_on": ["broken"],
            },
            {"id": "rescue", "kind": "tool", "tool": "calculator", "args": {"expression": "7"}},
            {
                "id": "shaky",
                "kind": "tool",
                "tool": "calculator",
                "args": {"expression": "nope("},
                "on_failure": "continue",
            },
            {
                "id": "sub",
                "kind": "workflow",
                "workflow": child_name,
                "depends_on": ["shaky"],
                "input": {"x": "{{ input.x }}"},
            },
        ]
    }
    created = await _workflow(client, admin, definition)
    assert created.status_code == 201, created.text
    run_id = (
        await client.post(
            f"/api/v2/workflows/{created.json()['data']['id']}/execute", json={"input": {"x": 5}}, headers=admin
        )
    ).json()["data"]["run_id"]
    run = await wait_for_run(client, admin, run_id)
    assert run["status"] == "completed", (run["error"], run["steps"])
    steps = {s["step_id"]: s for s in run["steps"]}
    assert steps["broken"]["status"] == "failed" and steps["broken"]["attempts"] == 2
    assert steps["rescue"]["status"] == "completed" and steps["after_broken"]["status"] == "skipped"
    assert steps["shaky"]["status"] == "failed" and steps["sub"]["status"] == "completed"
    assert steps["sub"]["output"] == 10 and steps["sub"]["child_run_id"]
    child_run = (await client.get(f"/api/v2/workflow-runs/{steps['sub']['child_run_id']}", headers=admin)).json()[
        "data"
    ]
    assert child_run["parent_run_id"] == run_id and child_run["input"] == {"x": 5}


async def test_an_unrouted_failure_fails_the_run_with_the_step_error(
    client: httpx.AsyncClient, admin: dict[str, str], engine: WorkflowEngine
) -> None:
    definition = {
        "steps": [
            {"id": "bad", "kind": "tool", "tool": "calculator", "args": {"expression": "1 / 0"}},
            {"id": "never", "kind": "tool", "tool": "calculator", "args": {"expression": "1"}, "depends_on": ["bad"]},
        ]
    }
    created = await _workflow(client, admin, definition)
    run_id = (await client.post(f"/api/v2/workflows/{created.json()['data']['id']}/execute", headers=admin)).json()[
        "data"
    ]["run_id"]
    run = await wait_for_run(client, admin, run_id)
    assert run["status"] == "failed" and "step 'bad' failed" in run["error"], run
    steps = {s["step_id"]: s for s in run["steps"]}
    assert steps["never"]["status"] == "cancelled"


async def test_a_step_past_its_timeout_is_cancelled_and_fails_the_run(
    client: httpx.AsyncClient, admin: dict[str, str], engine: WorkflowEngine
) -> None:
    # No worker pool: the task never starts, so the attempt times out.
    agent = await create_agent(client, admin, unique("wfagent"))
    definition = {
        "steps": [{"id": "slow", "kind": "agent", "agent": agent["name"], "task": "never runs", "timeout_seconds": 1}]
    }
    created = await _workflow(client, admin, definition)
    run_id = (await client.post(f"/api/v2/workflows/{created.json()['data']['id']}/execute", headers=admin)).json()[
        "data"
    ]["run_id"]
    run = await wait_for_run(client, admin, run_id, timeout=60)
    assert run["status"] == "failed" and "timed out after 1s" in run["error"], run
    task_id = run["steps"][0]["task_id"]
    task = (await client.get(f"/api/v2/tasks/{task_id}", headers=admin)).json()["data"]
    assert task["status"] == "cancelled"
