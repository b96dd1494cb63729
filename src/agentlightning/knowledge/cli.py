"""``agentlightning kb``: import files into the knowledge base, search it, backfill embeddings."""

from __future__ import annotations

import asyncio
import html
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from agentlightning.knowledge.ingest.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP

app = typer.Typer(help="Knowledge base: import, search, embeddings.", no_args_is_help=True)
console = Console()
T = TypeVar("T")


def _with_ctx(work: Callable[..., Awaitable[T]]) -> T:
    from agentlightning.core.context import AppContext
    from agentlightning.settings import get_settings

    async def _main() -> T:
        ctx = await AppContext.create(get_settings())
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    return asyncio.run(_main())


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def display_names(paths: list[str]) -> dict[str, str]:
    """A short, distinct name per imported file: its path relative to the files' common folder
    (``a/readme.md`` and ``b/readme.md``, not two truncated absolute paths)."""
    if not paths:
        return {}
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath(absolute) if len(set(absolute)) > 1 else os.path.dirname(absolute[0])
    if common in absolute:  # every path is the same file
        common = os.path.dirname(common)
    return {p: os.path.relpath(a, common) for p, a in zip(paths, absolute, strict=True)}


def _common_folder(path: str, shown: dict[str, str]) -> str:
    """The folder the displayed names are relative to."""
    relative = shown[path]
    absolute = os.path.abspath(path)
    return absolute[: len(absolute) - len(relative)].rstrip(os.sep) or os.sep


@app.command("import")
def import_files(
    paths: list[Path] = typer.Argument(..., help="Files or directories (.md, .txt, .pdf, .csv, .jsonl)."),
    category: str | None = typer.Option(None, help="Category for records that do not name one."),
    tag: list[str] = typer.Option([], "--tag", help="Tag added to every record (repeatable)."),
    embed: bool = typer.Option(
        True, "--embed/--no-embed", help="Embed for semantic search now (or later with `kb embed`)."
    ),
    batch_size: int = typer.Option(500, min=1, help="Records per transaction."),
    chunk_chars: int = typer.Option(DEFAULT_MAX_CHARS, min=200, help="Largest chunk, in characters."),
    overlap: int = typer.Option(DEFAULT_OVERLAP, min=0, help="Characters repeated between neighbouring chunks."),
) -> None:
    """Import documents, chunked on headings and paragraphs.

    Re-importing a file makes the knowledge base match its current content: unchanged chunks stay,
    new ones are added, and chunks the file no longer has are removed.
    """
    from agentlightning.knowledge.ingest.parsers import ParseOptions, discover
    from agentlightning.knowledge.ingest.pipeline import import_paths

    try:
        files = discover(paths)
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] no such file: {exc}")
        raise typer.Exit(2) from exc
    if not files:
        console.print("[yellow]no supported files found[/]")
        raise typer.Exit(1)
    options = ParseOptions(category=category, tags=tuple(tag), max_chars=chunk_chars, overlap=overlap)
    names = display_names([str(f) for f in files])

    async def _work(ctx):  # noqa: ANN001, ANN202
        with _progress() as progress:
            files_task = progress.add_task("files", total=len(files))
            records_task = progress.add_task("records", total=0)

            def on_file(path: Path, count: int) -> None:
                name = names.get(str(path)) or path.name
                progress.update(files_task, advance=1, description=f"files ({name})")
                progress.update(records_task, total=(progress.tasks[records_task].total or 0) + count)

            return await import_paths(
                ctx,
                files,
                options,
                embed=embed,
                batch_size=batch_size,
                on_file=on_file,
                on_progress=lambda n: progress.update(records_task, advance=n),
            )

    report = _with_ctx(_work)
    shown = display_names([f.path for f in report.files])
    table = Table(title=f"in {_common_folder(report.files[0].path, shown)}" if report.files else None)
    table.add_column("file", overflow="fold", ratio=3)  # wrapped, never cut: each row names its file
    for column in ("records", "created", "skipped", "removed", "embedded"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("error", overflow="fold", ratio=2)
    for f in report.files:
        table.add_row(
            shown[f.path],
            str(f.records),
            str(f.created),
            str(f.skipped),
            str(f.removed),
            str(f.embedded),
            f.error or "",
        )
    console.print(table)
    console.print(
        f"[green]{report.created} created[/], {report.skipped} already present, "
        f"{report.removed} no longer in their file (removed), {len(report.failed)} file(s) failed"
    )
    if report.failed:
        raise typer.Exit(1)


def _snippet_text(snippet: str) -> Text:
    """A ``<mark>``-highlighted HTML snippet as Rich text for the terminal."""
    out = Text()
    for i, part in enumerate(re.split(r"</?mark>", snippet)):
        out.append(html.unescape(part), style="bold yellow" if i % 2 else "")
    return out


@app.command()
def search(
    query: str = typer.Argument(..., help='Web-search syntax: words, "phrases", -exclusions, or.'),
    mode: str = typer.Option("hybrid", help="fulltext, semantic or hybrid."),
    limit: int = typer.Option(10, min=1, max=100),
    category: str | None = typer.Option(None),
    tag: list[str] = typer.Option([], "--tag", help="Required tag (repeatable)."),
) -> None:
    """Search the knowledge base from the terminal."""
    from agentlightning.knowledge import service

    hits = _with_ctx(lambda ctx: service.search(ctx, query, mode=mode, limit=limit, category=category, tags=tag))
    table = Table("id", "score", "title", "snippet")
    for hit in hits:
        table.add_row(str(hit.id), f"{hit.score:.4f}", hit.title, _snippet_text(hit.snippet))
    console.print(table)


@app.command()
def embed(batch_size: int = typer.Option(256, min=1, help="Items per transaction.")) -> None:
    """Embed every item that has no embedding yet (after `kb import --no-embed`, or a model change)."""
    from agentlightning.knowledge.maintenance import count_missing_embeddings, embed_missing

    async def _work(ctx):  # noqa: ANN001, ANN202
        missing = await count_missing_embeddings(ctx)
        with _progress() as progress:
            task = progress.add_task("embedding", total=missing)
            return await embed_missing(
                ctx, batch_size=batch_size, on_progress=lambda n: progress.update(task, advance=n)
            )

    console.print(f"[green]{_with_ctx(_work)} item(s) embedded[/]")
