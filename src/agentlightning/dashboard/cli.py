"""``agentlightning dashboard``: start the Streamlit dashboard against a running API."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import typer

APP_FILE = Path(__file__).with_name("app.py")


def streamlit_command(host: str, port: int, api_url: str, token_file: Path | None) -> list[str]:
    """The ``streamlit run`` command line of the dashboard."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_FILE),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--",
        "--api-url",
        api_url,
    ]
    if token_file is not None:
        command += ["--token-file", str(token_file)]
    return command


def dashboard(
    host: str = typer.Option("127.0.0.1", help="Address the dashboard listens on."),
    port: int = typer.Option(8501, min=1, max=65535, help="Port of the dashboard."),
    api_url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of the platform's API."),
    token_file: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="A file holding an access token or API key: start logged in (e.g. a wall screen).",
    ),
) -> None:
    """Start the Streamlit dashboard (agents, tasks, traces, RL, knowledge, health, users)."""
    if importlib.util.find_spec("streamlit") is None:
        typer.echo("The dashboard needs Streamlit: pip install 'agentlightning[dashboard]'", err=True)
        raise typer.Exit(2)
    typer.echo(f"Dashboard on http://{host}:{port} (API {api_url})")
    raise typer.Exit(subprocess.call(streamlit_command(host, port, api_url, token_file)))
