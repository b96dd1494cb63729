"""``agentlightning rl suite``: install, list and show the built-in verifiable suite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="The built-in verifiable suite: install, list, show.", no_args_is_help=True)
console = Console()
T = TypeVar("T")


def _with_ctx(work: Callable[[Any], Awaitable[T]]) -> T:
    from agentlightning.core.context import AppContext
    from agentlightning.errors import AppError
    from agentlightning.settings import get_settings

    async def _main() -> T:
        ctx = await AppContext.create(get_settings())
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    try:
        return asyncio.run(_main())
    except AppError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2) from exc


@app.command()
def install(suite: str = typer.Option("builtin", help="Suite to install.")) -> None:
    """Install the suite's tasks, knowledge documents and sample database (idempotent)."""
    from agentlightning.rl.suite import install_suite

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bars: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = progress.add_task(phase, total=total)
            progress.update(bars[phase], completed=done, total=total)

        summary = _with_ctx(lambda ctx: install_suite(ctx, suite=suite, progress=report))
    console.print(
        f"suite [bold]{summary.suite}[/]: {summary.total} tasks ({summary.created} new, {summary.updated} updated, "
        f"{summary.removed} removed); splits {summary.by_split}; types {summary.by_type}"
    )
    console.print(f"knowledge items created: {summary.knowledge_items_created}")
    for kind, reason in summary.skipped.items():
        console.print(f"[yellow]skipped {kind}:[/] {reason}")
    console.print(
        "The sql tasks read the sample database through the sql_query tool; declare it in the environment:\n"
        f"  SQL_DATA_SOURCES='{json.dumps(summary.sql_data_source)}'",
        soft_wrap=True,
    )


@app.command("list")
def list_(
    split: str | None = typer.Option(None, help="train or heldout"),
    task_type: str | None = typer.Option(None, "--type", help="arithmetic, format, knowledge, sql, function_calling"),
    suite: str = typer.Option("builtin"),
    limit: int = typer.Option(50, min=1),
) -> None:
    """List the installed tasks of a suite."""
    from agentlightning.rl.suite.service import list_suite_rows
    from agentlightning.vocabulary import SUITE_SPLITS

    if split is not None and split not in SUITE_SPLITS:
        raise typer.BadParameter(f"one of {', '.join(SUITE_SPLITS)}", param_hint="--split")
    rows = _with_ctx(lambda ctx: list_suite_rows(ctx.db, suite=suite, split=split, task_type=task_type))
    table = Table("id", "split", "type", "agent type", "verifier", "prompt")
    for row in rows[:limit]:
        prompt = row["prompt"].replace("\n", " ")
        table.add_row(
            row["id"],
            row["split"],
            row["task_type"],
            row["agent_type"] or "",
            row["verifier"].get("type", ""),
            prompt[:70] + ("…" if len(prompt) > 70 else ""),
        )
    console.print(table)
    console.print(f"{len(rows)} task(s)" + (f", first {limit} shown" if len(rows) > limit else ""))


@app.command()
def show(task_id: str) -> None:
    """Show one task (prompt, verifier, context, reference answer) as JSON."""
    from agentlightning.rl.suite.service import get_suite_task

    row = _with_ctx(lambda ctx: get_suite_task(ctx.db, task_id))
    console.print_json(json.dumps(row, default=str))
