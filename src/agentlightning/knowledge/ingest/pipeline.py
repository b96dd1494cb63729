"""Import files into the knowledge base: parse, chunk, skip what is stored, insert in batches.

A file owns the items imported from it (``knowledge_items.source`` is its absolute path). Importing
it again makes the knowledge base match the file's current content: records the file already
stored (same content hash) are kept as they are, new ones are inserted, and the file's items that
are no longer in it are deleted (with their versions and embeddings; other processes' vector
indexes drop them through the deletion log).

Each batch is its own transaction, so an interrupted import keeps what it finished, and running it
again inserts only the rest; stale items are deleted only after every new record of the file is
in, so an interrupted re-import never leaves the file with less than before. The ``on_progress``
callback receives the number of records just handled, for a progress bar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select

from agentlightning.core.context import AppContext
from agentlightning.knowledge import cache as search_cache
from agentlightning.knowledge.ingest.bulk import insert_records
from agentlightning.knowledge.ingest.parsers import IngestRecord, ParseOptions, parse_file, source_of
from agentlightning.knowledge.search.vectors import get_backend
from agentlightning.storage.models.knowledge import KnowledgeItem

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
#: Ids deleted per statement when removing a file's stale items.
DELETE_BATCH = 1000


@dataclass
class FileReport:
    """What happened to one file."""

    path: str
    records: int = 0
    created: int = 0
    skipped: int = 0
    embedded: int = 0
    #: Items the file had stored that it no longer contains (deleted by the import).
    removed: int = 0
    error: str | None = None


@dataclass
class ImportReport:
    """What an import did, per file and in total."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def created(self) -> int:
        """Items created."""
        return sum(f.created for f in self.files)

    @property
    def skipped(self) -> int:
        """Records already stored."""
        return sum(f.skipped for f in self.files)

    @property
    def removed(self) -> int:
        """Stale items deleted because their file no longer contains them."""
        return sum(f.removed for f in self.files)

    @property
    def failed(self) -> list[FileReport]:
        """Files that could not be read."""
        return [f for f in self.files if f.error]


def read_records(path: Path, options: ParseOptions) -> list[IngestRecord]:
    """Every record of one file (raises on unreadable or unsupported files)."""
    return list(parse_file(path, options))


async def import_records(
    ctx: AppContext,
    records: Sequence[IngestRecord],
    report: FileReport,
    *,
    created_by: str | None,
    embed: bool,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
    source: str | None = None,
) -> None:
    """Insert ``records`` batch by batch (one transaction each), updating ``report``.

    With ``source``, a record counts as stored only if that file stored it (see ``insert_records``).
    """
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        async with ctx.db.session() as session:
            outcome = await insert_records(session, batch, created_by=created_by, embed=embed, source=source)
            await session.commit()
        report.created += len(outcome.ids)
        report.skipped += outcome.skipped
        report.embedded += outcome.embedded
        if on_progress:
            on_progress(len(batch))


async def remove_stale(ctx: AppContext, source: str, current_hashes: set[str]) -> int:
    """Delete the items imported from ``source`` whose content the file no longer has; returns how many."""
    async with ctx.db.session() as session:
        rows = await session.execute(
            select(KnowledgeItem.id, KnowledgeItem.content_hash).where(KnowledgeItem.source == source)
        )
        stale = [int(item_id) for item_id, digest in rows if digest not in current_hashes]
        for start in range(0, len(stale), DELETE_BATCH):
            # Versions and embeddings cascade; the embeddings' trigger logs the deletions.
            await session.execute(
                delete(KnowledgeItem).where(KnowledgeItem.id.in_(stale[start : start + DELETE_BATCH]))
            )
        backend = await get_backend(session)
        await session.commit()
    backend.forget(stale)
    return len(stale)


async def import_paths(
    ctx: AppContext,
    files: Sequence[Path],
    options: ParseOptions,
    *,
    created_by: str | None = "cli",
    embed: bool = True,
    batch_size: int = DEFAULT_BATCH,
    on_file: Callable[[Path, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``files``; a file that cannot be parsed is reported and the others still go in."""
    report = ImportReport()
    for path in files:
        file_report = FileReport(str(path))
        report.files.append(file_report)
        try:
            records = read_records(path, options)
        except (OSError, ValueError) as exc:
            file_report.error = str(exc)
            log.warning("skipping %s: %s", path, exc)
            continue
        file_report.records = len(records)
        if on_file:
            on_file(path, len(records))
        source = source_of(path)
        await import_records(
            ctx,
            records,
            file_report,
            created_by=created_by,
            embed=embed,
            batch_size=batch_size,
            on_progress=on_progress,
            source=source,
        )
        file_report.removed = await remove_stale(ctx, source, {r.content_hash for r in records})
    if report.created or report.removed:
        await search_cache.invalidate_all(ctx.cache)
        await ctx.events.publish("knowledge", "items_imported", {"count": report.created, "removed": report.removed})
    return report
