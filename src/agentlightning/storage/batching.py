"""Statements shared by callers whose rows arrive together (group commit on the driver connection).

A process serves many requests or tasks at once, and their rows (a task to queue, an outcome to
store) arrive while the previous row's statement is still on its way to the database.  Instead of
one statement (one round trip, one commit) per row, a :class:`StatementBatcher` sends what has
arrived in the meantime as one statement, and hands each caller its own row of the result.
Nothing waits on a timer: a lone row is written at once, and batches form only while the
database is busy, which is when they help.

A batch is all or nothing in the database, so one row the database refuses (a value it cannot
store) must not take others with it: when the database refuses a batch, its rows are written
again one by one and only the refused one reports the error.  When the database cannot be
reached, every caller gets that error at once, as a lone statement's caller would.  A caller
cancelled before its row was sent takes it back; once sent, the row is written.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentlightning.storage.faults import is_unavailable

if TYPE_CHECKING:
    from agentlightning.storage.db import Database

log = logging.getLogger(__name__)

#: The most rows in one statement.
MAX_BATCH = 64


@dataclass(slots=True)
class _Pending:
    item: Any
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class StatementBatcher(ABC):
    """Runs one statement for the items handed in while the previous one ran."""

    #: What a batch is, for the log.
    what = "rows"

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        #: Statements sent and items written (for tests and benchmarks).
        self.statements = 0
        self.items = 0

    @abstractmethod
    def key(self, item: Any) -> Hashable:
        """The key of ``item``'s row in the statement's result."""

    @abstractmethod
    async def run(self, conn: Any, items: Sequence[Any]) -> dict[Hashable, Any]:
        """Run the statement for ``items`` on ``conn`` (a driver connection); rows by :meth:`key`."""

    async def submit(self, item: Any) -> Any:
        """Write ``item`` (with whatever else has arrived); returns its row, or None without one."""
        pending = _Pending(item)
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name=f"{type(self).__name__}-writer")
        return await pending.done

    async def _write_queued(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._queue:
                batch = [p for p in self._queue[: self.max_batch] if not p.done.done()]
                del self._queue[: self.max_batch]
                if batch:
                    await self._write(batch)
                batch = []
        except BaseException as error:  # cancelled (shutdown): nobody may wait forever
            for pending in [*batch, *self._queue]:
                if pending.done.done():
                    continue
                if isinstance(error, Exception):
                    pending.done.set_exception(error)
                else:
                    pending.done.cancel()
            self._queue.clear()
            raise

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with self.db.driver_connection() as conn:
                rows = await self.run(conn, [p.item for p in batch])
        except Exception as error:  # noqa: BLE001 - reported to each caller below
            if len(batch) == 1 or is_unavailable(error):  # the database is away: all fail alike
                for pending in batch:
                    _settle(pending, error=error)
                return
            log.warning("writing %d %s together failed (%s); writing them one by one", len(batch), self.what, error)
            for pending in batch:
                await self._write([pending])
            return
        self.statements += 1
        self.items += len(batch)
        for pending in batch:
            _settle(pending, row=rows.get(self.key(pending.item)))


def _settle(pending: _Pending, *, row: Any = None, error: BaseException | None = None) -> None:
    if pending.done.done():  # its caller was cancelled meanwhile
        return
    if error is not None:
        pending.done.set_exception(error)
    else:
        pending.done.set_result(row)
