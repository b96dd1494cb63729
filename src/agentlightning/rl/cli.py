"""``agentlightning rl``: train locally with a progress bar, list, show and stop experiments, and
export rollouts as TRL/VERL datasets (``rl export``).

``rl train`` goes through the same path as the API: the experiment is validated and stored,
then an :class:`~agentlightning.rl.manager.ExperimentManager` limited to that experiment runs it
in a child process (or on Ray) while the command renders its streamed metrics. Ctrl-C requests a
stop (the run saves a final model); a second Ctrl-C leaves it to the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from agentlightning.rl.suite.cli import app as suite_app

app = typer.Typer(
    help="RL experiments: train, list, show, stop; export rollouts as datasets; the verifiable suite.",
    no_args_is_help=True,
)
console = Console()
app.add_typer(suite_app, name="suite")


@asynccontextmanager
async def _context() -> AsyncIterator[Any]:
    from agentlightning.core.context import AppContext
    from agentlightning.settings import get_settings

    ctx = await AppContext.create(get_settings())
    try:
        yield ctx
    finally:
        await ctx.close()


def _parse_hyperparameters(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse (numbers, lists, objects), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--hp")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command()
def train(
    algo: str = typer.Option(..., "--algo", "-a", help="ppo, dqn, sac, a2c or td3"),
    env: str = typer.Option(..., "--env", "-e", help="Gymnasium environment id, e.g. CartPole-v1"),
    timesteps: int = typer.Option(100_000, "--timesteps", "-t", help="total_timesteps"),
    n_envs: int = typer.Option(1, "--n-envs"),
    seed: int | None = typer.Option(None, "--seed"),
    hp: list[str] = typer.Option([], "--hp", help="hyperparameter key=value (repeatable), e.g. --hp n_steps=256"),
    name: str | None = typer.Option(None, "--name", help="unique experiment name (default: generated)"),
    checkpoint_freq: int = typer.Option(10_000, "--checkpoint-freq"),
    eval_episodes: int = typer.Option(10, "--eval-episodes"),
    backend: str = typer.Option("auto", "--backend", help="auto, subprocess or ray"),
    detach: bool = typer.Option(False, "--detach", help="queue it for the server and return"),
) -> None:
    """Train an experiment and show its progress (same validation, storage and runner as the API)."""
    from agentlightning.errors import AppError
    from agentlightning.rl.experiments import ExperimentCreate

    try:
        request = ExperimentCreate(
            name=name or f"{algo}-{env}-{time.strftime('%Y%m%d-%H%M%S')}",
            algorithm=algo,
            environment=env,
            total_timesteps=timesteps,
            n_envs=n_envs,
            seed=seed,
            hyperparameters=_parse_hyperparameters(hp),
            checkpoint_freq=checkpoint_freq,
            evaluation={"n_episodes": eval_episodes},
            backend=backend,
        )
    except ValueError as exc:
        _fail(str(exc))
    try:
        asyncio.run(_train(request, detach))
    except AppError as exc:
        errors = exc.details.get("errors") if exc.details else None
        _fail(exc.message + ("".join(f"\n  {e['field']}: {e['message']}" for e in errors) if errors else ""))


async def _train(request: Any, detach: bool) -> None:
    from agentlightning.rl.experiments import TERMINAL, ExperimentService
    from agentlightning.rl.manager import ExperimentManager

    async with _context() as ctx:
        service = ExperimentService(ctx)
        exp = await service.create(request, created_by="cli")
        console.print(f"experiment [bold]{exp['id']}[/] ({exp['name']}) queued")
        if detach:
            return
        manager = ExperimentManager(ctx.settings, only_ids={exp["id"]}, max_concurrent=1)
        await manager.start(ctx)
        stopping = False
        try:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as progress:
                bar = progress.add_task(exp["status"], total=request.total_timesteps, stats="")
                while exp["status"] not in TERMINAL:
                    try:
                        await asyncio.sleep(0.5)
                    except asyncio.CancelledError:  # Ctrl-C: first one stops the run, second one quits
                        if stopping:
                            raise
                        stopping = True
                        current = asyncio.current_task()
                        if current is not None:
                            current.uncancel()
                        console.print("stopping (the run saves a final model); Ctrl-C again to leave it")
                        if exp["status"] not in TERMINAL:
                            await service.stop(exp["id"])
                    exp = await service.get(exp["id"])
                    m = exp["metrics"]
                    stats = " ".join(
                        f"{label}={m[key]:.1f}"
                        for key, label in (("ep_rew_mean", "reward"), ("fps", "fps"))
                        if isinstance(m.get(key), (int, float))
                    )
                    progress.update(bar, completed=m.get("timesteps", 0), description=exp["status"], stats=stats)
        finally:
            await manager.stop()
        _print_result(exp)


def _print_result(exp: dict[str, Any]) -> None:
    colour = {"completed": "green", "stopped": "yellow", "failed": "red"}.get(exp["status"], "white")
    console.print(
        f"experiment {exp['id']} [{colour}]{exp['status']}[/] after {exp['metrics'].get('timesteps', 0):,} steps"
    )
    if exp.get("error"):
        console.print(f"[red]{exp['error']}[/]")
    final = exp["metrics"].get("final_evaluation")
    if final:
        console.print(
            f"evaluation: mean reward {final['mean_reward']:.2f} ± {final['std_reward']:.2f} over {final['n_episodes']} episodes"
        )


@app.command("list")
def list_(
    status: str | None = typer.Option(None, "--status"),
    limit: int = typer.Option(20, "--limit"),
) -> None:
    """List experiments, newest first."""
    from agentlightning.rl.experiments import ExperimentService

    async def _list() -> dict[str, Any]:
        async with _context() as ctx:
            return await ExperimentService(ctx).list_experiments(status=status, limit=limit)

    page = asyncio.run(_list())
    table = Table("id", "name", "algorithm", "environment", "status", "timesteps", "reward", "eval")
    for e in page["items"]:
        m = e["metrics"]
        final = (m.get("final_evaluation") or {}).get("mean_reward")
        table.add_row(
            str(e["id"]),
            e["name"],
            e["algorithm"],
            e["config"].get("environment", ""),
            e["status"],
            f"{m.get('timesteps', 0):,}/{m.get('total_timesteps', 0):,}",
            "" if m.get("ep_rew_mean") is None else f"{m['ep_rew_mean']:.1f}",
            "" if final is None else f"{final:.1f}",
        )
    console.print(table)
    console.print(f"{page['total']} experiment(s)")


@app.command()
def show(experiment_id: int) -> None:
    """Show one experiment as JSON."""
    from agentlightning.rl.experiments import ExperimentService

    async def _show() -> dict[str, Any]:
        async with _context() as ctx:
            return await ExperimentService(ctx).get(experiment_id)

    _run_app_call(_show, lambda exp: console.print_json(json.dumps(exp, default=str)))


@app.command()
def stop(experiment_id: int) -> None:
    """Stop an experiment (a running one stops at its next check)."""
    from agentlightning.rl.experiments import ExperimentService

    async def _stop() -> dict[str, Any]:
        async with _context() as ctx:
            return await ExperimentService(ctx).stop(experiment_id)

    _run_app_call(
        _stop,
        lambda exp: console.print(
            f"experiment {experiment_id}: {'stopped' if exp['status'] == 'stopped' else 'stop requested'}"
        ),
    )


def _run_app_call(factory: Any, render: Any) -> None:
    from agentlightning.errors import AppError

    try:
        render(asyncio.run(factory()))
    except AppError as exc:
        _fail(exc.message)


def _datetime_option(value: str | None, hint: str) -> Any:
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date/time: {value!r}", param_hint=hint) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@app.command()
def export(
    output: Path = typer.Argument(..., help="file to write: .jsonl or .parquet"),
    fmt: str = typer.Option("trl", "--format", "-f", help="trl (prompt/completion/reward) or verl"),
    file_format: str | None = typer.Option(None, "--file-format", help="jsonl or parquet (default: from the suffix)"),
    agent: str | None = typer.Option(None, "--agent", help="agent id or name"),
    source: str | None = typer.Option(None, "--source", help="task, sdk, gateway or workflow"),
    status: str | None = typer.Option(None, "--status", help="running, completed or failed"),
    since: str | None = typer.Option(None, "--since", help="created at or after (ISO 8601)"),
    until: str | None = typer.Option(None, "--until", help="created before (ISO 8601)"),
    min_reward: float | None = typer.Option(None, "--min-reward"),
    max_reward: float | None = typer.Option(None, "--max-reward"),
    rewarded_only: bool = typer.Option(False, "--rewarded-only", help="only rollouts that have a reward"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="at most this many rollouts (newest first)"),
) -> None:
    """Export rollouts as a training dataset that TRL (datasets) or VERL reads."""
    from pydantic import ValidationError

    from agentlightning.errors import AppError
    from agentlightning.rollouts.export import export_rollouts
    from agentlightning.rollouts.schemas import RolloutFilters

    if fmt not in ("trl", "verl"):
        raise typer.BadParameter("choose trl or verl", param_hint="--format")
    if file_format not in (None, "jsonl", "parquet"):
        raise typer.BadParameter("choose jsonl or parquet", param_hint="--file-format")
    try:
        filters = RolloutFilters(
            source=source,
            status=status,
            since=_datetime_option(since, "--since"),
            until=_datetime_option(until, "--until"),
            min_reward=min_reward,
            max_reward=max_reward,
            rewarded=rewarded_only,
        )
    except ValidationError as exc:
        _fail("; ".join(f"--{'-'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))
        return

    async def _export() -> Any:
        from agentlightning.agents.service import AgentService

        async with _context() as ctx:
            scoped = filters
            if agent is not None:
                scoped = filters.model_copy(update={"agent_id": (await AgentService(ctx).get(agent)).id})
            with Progress(
                TextColumn("[bold]export[/]"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} rollouts"),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                bar = progress.add_task("export", total=None)
                return await export_rollouts(
                    ctx,
                    output,
                    fmt=fmt,  # type: ignore[arg-type]
                    file_format=file_format,  # type: ignore[arg-type]
                    filters=scoped,
                    limit=limit,
                    on_progress=lambda done, total: progress.update(bar, completed=done, total=total),
                )

    try:
        result = asyncio.run(_export())
    except AppError as exc:
        _fail(exc.message)
        return
    console.print(
        f"wrote {result.rows} row(s) to {result.path} ({fmt}; {result.skipped} rollout(s) without a conversation skipped)"
    )
