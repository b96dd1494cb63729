"""``agentlightning workflow run FILE``: create or update a workflow from a YAML/JSON file, start a
run, and follow its steps live (over the HTTP API, so it works against any server).

    agentlightning workflow run pipeline.yaml --input topic=owls --input n=3 --url http://127.0.0.1:8000

The workflow's name is the file's ``name`` field, or the file name without its extension.  When a
workflow of that name exists and its definition differs, the file becomes a new version.
``--input key=value`` values are JSON when they parse (numbers, lists), else strings;
``--input-json`` gives the whole input as one JSON object.  Authenticate with ``--api-key``,
``--token`` or ``--username``/``--password`` (or their ``AGL_*`` environment variables).
The exit code is 0 when the run completes, 1 when it fails or is cancelled.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

app = typer.Typer(help="Workflows: run a definition file and follow it.", no_args_is_help=True)
console = Console()
TERMINAL = ("completed", "failed", "cancelled")
_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "pending": "white",
}


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def parse_inputs(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    """The run input from ``--input-json`` and ``--input key=value`` pairs (pairs win)."""
    out: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--input-json") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--input-json")
        out.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--input")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_file(path: Path) -> dict[str, Any]:
    """A definition file (YAML or JSON) as a create body, named after the file when it has no name."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read {path}: {exc}")
    if not isinstance(document, dict):
        _fail(f"{path} must hold a mapping with steps")
    document.setdefault("name", path.stem)
    return document


def _headers(
    http: httpx.Client, api_key: str | None, token: str | None, username: str | None, password: str | None
) -> dict[str, str]:
    if api_key:
        return {"X-API-Key": api_key}
    if token:
        return {"Authorization": f"Bearer {token}"}
    if username and password:
        response = http.post("/auth/login", json={"username": username, "password": password})
        if response.status_code != 200:
            _fail(f"login failed: {_message(response)}")
        return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}
    _fail("authenticate with --api-key, --token or --username and --password")
    return {}


def _message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
    lines = [f"{error.get('code')}: {error.get('message')}"]
    for item in (error.get("details") or {}).get("errors", [])[:20]:
        lines.append(f"  {item.get('field')}: {item.get('message')}")
    return "\n".join(lines)


def _upsert(http: httpx.Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """Create the workflow, or store the file as a new version when its definition changed."""
    name = str(body["name"])
    current = http.get(f"/api/v2/workflows/{name}", headers=headers)
    if current.status_code == 404:
        created = http.post("/api/v2/workflows", json=body, headers=headers)
        if created.status_code != 201:
            _fail(_message(created))
        return created.json()["data"]
    if current.status_code != 200:
        _fail(_message(current))
    workflow = current.json()["data"]
    update = {k: v for k, v in body.items() if k != "name"}
    if not _differs(workflow, update):
        return workflow
    proposed = http.put(f"/api/v2/workflows/{workflow['id']}", json=update, headers=headers)
    if proposed.status_code != 200:
        _fail(_message(proposed))
    return proposed.json()["data"]


def _differs(workflow: dict[str, Any], update: dict[str, Any]) -> bool:
    """Whether the file's definition differs from the stored one (both in the stored form)."""
    from pydantic import ValidationError

    from agentlightning.workflows.spec import WorkflowUpdate, definition_dict

    try:
        proposed = definition_dict(WorkflowUpdate.model_validate(update))
    except ValidationError:
        return True  # the server names the problems
    stored = workflow.get("definition") or {}
    changed = json.dumps(proposed, sort_keys=True) != json.dumps(stored, sort_keys=True)
    return changed or any(update.get(k) not in (None, workflow.get(k)) for k in ("description", "visibility"))


def render_run(run: dict[str, Any]) -> Group:
    """The live view: one row per step (fan-out items counted), then the run's state."""
    table = Table(title=f"{run.get('workflow_name')} v{run.get('version')} run {run.get('id')}")
    for column in ("step", "kind", "status", "attempts", "time", "output / error"):
        table.add_column(column)
    for step in run.get("steps", []):
        status = step["status"]
        if step.get("items"):
            done = sum(1 for i in step["items"] if i["status"] in TERMINAL)
            status = f"{status} ({done}/{len(step['items'])})"
        shown = step.get("error") if step["status"] == "failed" else step.get("output")
        text = "" if shown is None else (shown if isinstance(shown, str) else json.dumps(shown, default=str))
        duration = f"{step['duration_ms'] / 1000:.1f}s" if step.get("duration_ms") is not None else ""
        style = _STYLE.get(step["status"], "white")
        table.add_row(
            step["step_id"], step["kind"], f"[{style}]{status}[/]", str(step["attempts"]), duration, text[:80]
        )
    style = _STYLE.get(run["status"], "white")
    return Group(table, f"run [{style}]{run['status']}[/]" + (f": {run['error']}" if run.get("error") else ""))


@app.command()
def run(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Workflow definition (YAML or JSON)"),
    inputs: list[str] = typer.Option([], "--input", "-i", help="key=value (JSON values parse), repeatable"),
    input_json: str | None = typer.Option(None, "--input-json", help="The whole input as a JSON object"),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", envvar="AGL_API_URL", help="The platform's URL"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="AGL_API_KEY"),
    token: str | None = typer.Option(None, "--token", envvar="AGL_TOKEN"),
    username: str | None = typer.Option(None, "--username", "-u", envvar="AGL_USERNAME"),
    password: str | None = typer.Option(None, "--password", "-p", envvar="AGL_PASSWORD"),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to follow the run"),
    interval: float = typer.Option(0.5, "--interval", help="Seconds between looks at the run"),
) -> None:
    """Create or update the workflow in FILE, run it with the given input and follow its steps."""
    body = load_file(file)
    run_input = parse_inputs(inputs, input_json)
    with httpx.Client(base_url=url, timeout=30) as http:
        headers = _headers(http, api_key, token, username, password)
        workflow = _upsert(http, headers, body)
        started = http.post(f"/api/v2/workflows/{workflow['id']}/execute", json={"input": run_input}, headers=headers)
        if started.status_code != 202:
            _fail(_message(started))
        current = started.json()["data"]
        deadline = time.monotonic() + timeout
        with Live(render_run(current), console=console, refresh_per_second=4) as live:
            while current["status"] not in TERMINAL and time.monotonic() < deadline:
                time.sleep(interval)
                response = http.get(f"/api/v2/workflow-runs/{current['id']}", headers=headers)
                if response.status_code != 200:
                    _fail(_message(response))
                current = response.json()["data"]
                live.update(render_run(current))
    if current["status"] == "completed":
        console.print_json(json.dumps(current.get("output"), default=str))
        raise typer.Exit(0)
    raise typer.Exit(1)
