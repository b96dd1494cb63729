"""The ``agentlightning`` command: serve, migrate, users, version (and feature sub-commands)."""

from __future__ import annotations

import importlib
import logging

import typer
from rich.console import Console
from rich.table import Table

from agentlightning import __version__

app = typer.Typer(
    name="agentlightning", help="Agent Lightning: serve LLM agents and improve them with RL.", no_args_is_help=True
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console()

#: Feature sub-commands: (module, attribute, name). A module that is not installed is skipped.
FEATURE_COMMANDS: list[tuple[str, str, str]] = [
    ("agentlightning.agents.cli", "worker", "worker"),
    ("agentlightning.rl.cli", "app", "rl"),
    ("agentlightning.knowledge.cli", "app", "kb"),
    ("agentlightning.agents.sql_cli", "app", "sql"),
    ("agentlightning.dashboard.cli", "dashboard", "dashboard"),
    ("agentlightning.workflows.cli", "app", "workflow"),
]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)  # one unwrapped line, for people and log scrapers
    raise typer.Exit(code)


def _settings():  # noqa: ANN202 - the Settings import stays lazy so `version` is instant
    from agentlightning.settings import get_settings

    return get_settings()


def check_production_or_exit() -> None:
    """Refuse to continue in production mode with an unsafe configuration (one line why)."""
    settings = _settings()
    if settings.is_production:
        problems = settings.production_problems()
        if problems:
            _fail("refusing to start in production: " + "; ".join(problems))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"agentlightning {__version__}")


@app.command()
def reset(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete the embedded default's data: the SQLite database, the vector index and RL artifacts."""
    import shutil
    from pathlib import Path

    from agentlightning.storage.db import sqlite_file

    settings = _settings()
    database = sqlite_file(settings.database_url)
    if database is None or settings.is_production:
        _fail("reset deletes only the embedded default's data (a SQLite file, not in production mode)")
    assert database is not None
    files = [Path(database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    folders = [Path(p) for p in (settings.knowledge_index_dir, settings.rl_artifacts_dir) if p]
    doomed = [p for p in [*files, *folders] if p.exists()]
    if not doomed:
        console.print("nothing to delete")
        return
    if not yes:
        typer.confirm("delete " + ", ".join(map(str, doomed)) + "?", abort=True)
    for path in doomed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    console.print(f"[green]deleted[/] {len(doomed)} path(s); the next start creates a fresh database")


@app.command()
def migrate(revision: str = typer.Option("head", help="Alembic revision to upgrade to.")) -> None:
    """Create or upgrade the database schema (SQLite or PostgreSQL)."""
    from agentlightning.storage.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"[green]database at {revision}[/] ({settings.database_dialect})")


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default: HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: PORT or 8000)."),
    workers: bool = typer.Option(
        True, "--workers/--no-workers", help="Run task workers and background services in this process."
    ),
    log_level: str = typer.Option("info", help="Uvicorn log level."),
    processes: int = typer.Option(
        1,
        min=1,
        max=64,
        help="API processes behind the one port (uvicorn workers); with more than one, /metrics "
        "aggregates every process (prometheus-client multiprocess mode, PROMETHEUS_MULTIPROC_DIR).",
    ),
) -> None:
    """Migrate the database, then serve the API (docs at /docs)."""
    import os

    import uvicorn

    from agentlightning.storage.migrate import upgrade

    check_production_or_exit()
    settings = _settings()
    upgrade(settings.database_url)
    if not workers:
        os.environ["AGL_RUN_SERVICES"] = "false"
    if processes > 1:
        prepare_multiprocess_metrics()
    uvicorn.run(
        "agentlightning.cli:create_served_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level=log_level,
        proxy_headers=True,
        log_config=None,  # uvicorn's loggers go through configure_logging's handler
        workers=processes if processes > 1 else None,
    )


def prepare_multiprocess_metrics() -> str:
    """Give the API processes a shared, empty metrics directory (``PROMETHEUS_MULTIPROC_DIR``).

    An existing setting is kept but emptied (values of an earlier run must not be counted
    again); otherwise a fresh temporary directory is made. Set in the environment before the
    worker processes start, so their ``prometheus_client`` imports pick it up.
    """
    import os
    import tempfile
    from pathlib import Path

    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="agl-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return str(directory)


def create_served_app():  # noqa: ANN201 - uvicorn factory; the API import stays lazy
    """The API as ``serve`` runs it: wrapped so log lines carry the request's user and route."""
    from agentlightning.api.app import create_app
    from agentlightning.observability.request_context import RequestContextMiddleware

    return RequestContextMiddleware(create_app())


@users_app.command("create")
def users_create(
    username: str,
    role: str = typer.Option("user", help="admin, developer or user."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Add a user."""
    from agentlightning.audit.service import CLI_ACTOR, Actor
    from agentlightning.auth.service import create_user
    from agentlightning.core.context import run_with_context
    from agentlightning.errors import AppError

    try:
        user = run_with_context(lambda ctx: create_user(ctx, username, password, role, actor=Actor(CLI_ACTOR)))
    except AppError as exc:
        _fail(f"{exc.message} {exc.details or ''}".strip())
    console.print(f"[green]created[/] user {user.username} (id {user.id}, role {user.role})")


@users_app.command("list")
def users_list() -> None:
    """List users."""
    from agentlightning.auth.service import list_users
    from agentlightning.core.context import run_with_context

    table = Table("id", "username", "role", "active", "created", "last login")
    for user in run_with_context(list_users):
        table.add_row(
            str(user.id),
            user.username,
            user.role,
            "yes" if user.is_active else "no",
            str(user.created_at),
            str(user.last_login_at or "-"),
        )
    console.print(table)


@users_app.command("set-role")
def users_set_role(username: str, role: str) -> None:
    """Change a user's role."""
    from agentlightning.auth.service import set_role
    from agentlightning.core.context import run_with_context
    from agentlightning.errors import AppError

    try:
        user = run_with_context(lambda ctx: set_role(ctx, username, role))
    except AppError as exc:
        _fail(exc.message)
    console.print(f"[green]{user.username}[/] is now {user.role} (their access tokens were revoked)")


@users_app.command("set-password")
def users_set_password(
    username: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Set a user's password; their access tokens and sessions end at once."""
    from agentlightning.auth.service import set_password
    from agentlightning.core.context import run_with_context
    from agentlightning.errors import AppError

    try:
        user = run_with_context(lambda ctx: set_password(ctx, username, password))
    except AppError as exc:
        _fail(exc.message)
    console.print(f"[green]{user.username}[/]: password changed, sessions ended")


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable a user; their access tokens and sessions end at once."""
    _set_active(username, False)


@users_app.command("enable")
def users_enable(username: str) -> None:
    """Enable a disabled user again."""
    _set_active(username, True)


def _set_active(username: str, active: bool) -> None:
    from agentlightning.auth.service import set_active
    from agentlightning.core.context import run_with_context
    from agentlightning.errors import AppError

    try:
        user = run_with_context(lambda ctx: set_active(ctx, username, active))
    except AppError as exc:
        _fail(exc.message)
    console.print(f"[green]{user.username}[/] is now {'enabled' if active else 'disabled'}")


def _register_features() -> None:
    for module_name, attr, name in FEATURE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # an optional extra is not installed
            logging.getLogger(__name__).debug("command %s unavailable: %s", name, exc)
            continue
        target = getattr(module, attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


def main() -> None:
    """Entry point of the ``agentlightning`` script."""
    from agentlightning.observability.logs import configure_logging

    configure_logging()  # JSON lines when AGL_ENV=production, readable console lines otherwise
    _register_features()
    app()


if __name__ == "__main__":
    main()
