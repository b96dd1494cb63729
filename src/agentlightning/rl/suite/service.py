"""Install and read the built-in verifiable suite (the one writer of ``verifiable_tasks``).

``install_suite`` is idempotent: it generates the suite's tasks (deterministic, see
:mod:`.generators`), installs the knowledge documents the ``knowledge`` tasks need through the
knowledge package's import pipeline (a fixed source, so a second install adds nothing), builds the
sample SQLite database of the ``sql`` tasks under ``RL_ARTIFACTS_DIR/suite/``, and makes the
table match the generated tasks (new ones inserted, changed ones updated, ones the generator no
longer makes deleted). ``load_suite_tasks`` reads a split back as
:class:`~agentlightning.rl.optimisers.base.VerifiableTask` objects.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from agentlightning.errors import NotFound
from agentlightning.rl.optimisers.base import VerifiableTask
from agentlightning.rl.suite.generators import SQL_SOURCE_NAME, SQL_TABLES, SUITE, SuiteItem, builtin_items, data_text
from agentlightning.storage.models.suite import SuiteTask
from agentlightning.vocabulary import SuiteSplit

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext
    from agentlightning.storage.db import Database

log = logging.getLogger(__name__)

#: ``knowledge_items.source`` of the suite's documents (owns them: re-installing replaces them).
KNOWLEDGE_SOURCE = "agentlightning:suite:builtin:knowledge"
KNOWLEDGE_CATEGORY = "agl-suite"
#: ``progress(phase, done, total)``: called as each phase advances (for a progress bar).
Progress = Callable[[str, int, int], None]
_COLUMNS = ("split", "task_type", "prompt", "verifier", "context", "agent_type", "reference")


@dataclass
class SuiteSummary:
    """What an install did and what the suite now holds."""

    suite: str
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    by_split: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    knowledge_items_created: int = 0
    #: The sample database of the ``sql`` tasks and the ``SQL_DATA_SOURCES`` entry that serves it.
    sql_database: str | None = None
    sql_data_source: dict[str, Any] = field(default_factory=dict)
    #: Kinds of tasks left out, with the reason (e.g. ``bfcl-eval`` not installed).
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _check_suite(suite: str) -> None:
    if suite != SUITE:
        raise NotFound("SUITE_NOT_FOUND", f"unknown suite {suite!r}; available: {SUITE!r}")


def sql_database_path(ctx: AppContext) -> Path:
    """Where the suite's sample shop database lives (``RL_ARTIFACTS_DIR/suite/builtin_shop.sqlite``)."""
    return Path(ctx.settings.rl_artifacts_dir).resolve() / "suite" / "builtin_shop.sqlite"


def _build_database(path: Path) -> bool:
    """(Re)build the sample database when missing or stale; True when written."""
    script = data_text("shop.sql")
    digest = hashlib.sha256(script.encode()).hexdigest()
    marker = path.with_suffix(".sha256")
    if path.is_file() and marker.is_file() and marker.read_text().strip() == digest:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(script)
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one
    marker.write_text(digest + "\n")
    return True


def sql_data_source(path: Path) -> dict[str, Any]:
    """The ``SQL_DATA_SOURCES`` entry (name -> source) that lets ``sql_query`` read the sample database."""
    return {SQL_SOURCE_NAME: {"url": f"sqlite:///{path}", "tables": list(SQL_TABLES)}}


def _register_data_source(ctx: AppContext, entry: dict[str, Any]) -> None:
    """Declare the data source in this process's settings unless the admin already declared one."""
    from agentlightning.settings import SqlDataSource

    for name, source in entry.items():
        if name not in ctx.settings.sql_data_sources:
            ctx.settings.sql_data_sources[name] = SqlDataSource(**source)


async def _install_knowledge(ctx: AppContext, progress: Progress | None) -> int:
    """Import the suite's documents into the knowledge base (idempotent); returns items created."""
    from agentlightning.knowledge import cache as search_cache
    from agentlightning.knowledge.ingest.parsers import IngestRecord
    from agentlightning.knowledge.ingest.pipeline import FileReport, import_records, remove_stale
    from agentlightning.rl.suite.generators import knowledge_documents

    records = [
        IngestRecord(
            title=doc["title"],
            content=doc["content"],
            category=KNOWLEDGE_CATEGORY,
            tags=["agl-suite", "builtin"],
            metadata={"suite": SUITE},
            source=KNOWLEDGE_SOURCE,
        )
        for doc in knowledge_documents()
    ]
    report = FileReport(KNOWLEDGE_SOURCE, records=len(records))
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("knowledge", done, len(records))

    await import_records(
        ctx,
        records,
        report,
        created_by="suite",
        embed=ctx.settings.rl_suite_embed_knowledge,
        on_progress=advance,
        source=KNOWLEDGE_SOURCE,
    )
    removed = await remove_stale(ctx, KNOWLEDGE_SOURCE, {r.content_hash for r in records})
    if report.created or removed:
        await search_cache.invalidate_all(ctx.cache)
        await ctx.events.publish("knowledge", "items_imported", {"count": report.created, "removed": removed})
    return report.created


def _row_values(item: SuiteItem) -> dict[str, Any]:
    return {
        "split": item.split,
        "task_type": item.task_type,
        "prompt": item.prompt,
        "verifier": item.verifier,
        "context": item.context,
        "agent_type": item.agent_type,
        "reference": item.reference,
    }


async def _sync_tasks(
    ctx: AppContext, suite: str, items: Sequence[SuiteItem], summary: SuiteSummary, progress: Progress | None
) -> None:
    """Make the table's rows of ``suite`` match ``items`` (one transaction)."""
    wanted = {item.id: item for item in items}
    async with ctx.db.session() as session:
        rows = {row.id: row for row in (await session.scalars(select(SuiteTask).where(SuiteTask.suite == suite)))}
        for done, item in enumerate(items, 1):
            values = _row_values(item)
            row = rows.get(item.id)
            if row is None:
                session.add(SuiteTask(id=item.id, suite=suite, **values))
                summary.created += 1
            elif any(getattr(row, column) != values[column] for column in _COLUMNS):
                for column in _COLUMNS:
                    setattr(row, column, values[column])
                summary.updated += 1
            else:
                summary.unchanged += 1
            if progress and (done % 25 == 0 or done == len(items)):
                progress("tasks", done, len(items))
        stale = [task_id for task_id in rows if task_id not in wanted]
        if stale:
            await session.execute(delete(SuiteTask).where(SuiteTask.id.in_(stale)))
        summary.removed = len(stale)
        await session.commit()


async def install_suite(ctx: AppContext, *, suite: str = SUITE, progress: Progress | None = None) -> SuiteSummary:
    """Install (or bring up to date) a verifiable suite; running it again changes nothing."""
    from agentlightning.rl.suite.bfcl import bfcl_data_dir

    _check_suite(suite)
    summary = SuiteSummary(suite=suite)
    items = builtin_items()
    if bfcl_data_dir() is None:
        summary.skipped["function_calling"] = (
            "bfcl-eval is not installed (pip install --no-deps -r requirements/suite-data.txt)"
        )
    summary.knowledge_items_created = await _install_knowledge(ctx, progress)
    path = sql_database_path(ctx)
    if _build_database(path):
        log.info("suite %s: built the sample database %s", suite, path)
    if progress:
        progress("database", 1, 1)
    summary.sql_database = str(path)
    summary.sql_data_source = sql_data_source(path)
    _register_data_source(ctx, summary.sql_data_source)
    await _sync_tasks(ctx, suite, items, summary, progress)
    summary.total = len(items)
    summary.by_split = dict(sorted(Counter(item.split for item in items).items()))
    summary.by_type = dict(sorted(Counter(item.task_type for item in items).items()))
    return summary


def _to_task(row: SuiteTask) -> VerifiableTask:
    return VerifiableTask(
        id=row.id,
        prompt=row.prompt,
        verifier=dict(row.verifier or {}),
        task_type=row.task_type,
        context=dict(row.context or {}),
    )


async def load_suite_tasks(
    db: Database,
    *,
    split: SuiteSplit,
    task_types: Sequence[str] | None = None,
    agent_type: str | None = None,
    limit: int | None = None,
    suite: str = SUITE,
) -> list[VerifiableTask]:
    """The installed tasks of one split (by id), optionally only some task types or one agent type."""
    query = select(SuiteTask).where(SuiteTask.suite == suite, SuiteTask.split == split)
    if task_types:
        query = query.where(SuiteTask.task_type.in_(list(task_types)))
    if agent_type:
        query = query.where(SuiteTask.agent_type == agent_type)
    query = query.order_by(SuiteTask.id)
    if limit is not None:
        query = query.limit(max(0, limit))
    async with db.session() as session:
        return [_to_task(row) for row in await session.scalars(query)]


async def list_suite_rows(
    db: Database, *, suite: str = SUITE, split: SuiteSplit | None = None, task_type: str | None = None
) -> list[dict[str, Any]]:
    """Rows of a suite as dicts (for ``rl suite list``), by id."""
    query = select(SuiteTask).where(SuiteTask.suite == suite)
    if split:
        query = query.where(SuiteTask.split == split)
    if task_type:
        query = query.where(SuiteTask.task_type == task_type)
    async with db.session() as session:
        rows = list(await session.scalars(query.order_by(SuiteTask.id)))
    return [
        {"id": r.id, "suite": r.suite, **{c: getattr(r, c) for c in _COLUMNS}, "created_at": r.created_at} for r in rows
    ]


async def get_suite_task(db: Database, task_id: str) -> dict[str, Any]:
    """One task of any suite as a dict (for ``rl suite show``)."""
    async with db.session() as session:
        row = await session.get(SuiteTask, task_id)
    if row is None:
        raise NotFound("SUITE_TASK_NOT_FOUND", f"no verifiable task {task_id!r}")
    return {"id": row.id, "suite": row.suite, **{c: getattr(row, c) for c in _COLUMNS}, "created_at": row.created_at}
