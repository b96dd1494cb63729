"""Work shared by callers that arrive together: SQL statements (group commit on the driver
connection) and Redis commands (one pipeline).

:class:`Coalescer` is the mechanism: what callers hand in while the previous batch is on its way
goes out as the next batch, and each caller gets its own result back. Nothing waits on a timer:
a lone item is sent at once, and batches form only while the server is busy, which is when they
help. A caller cancelled before its item was sent takes it back; once sent, it is done.

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
class Pending:
    """One caller's item and the future its result is set on."""

    item: Any
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Coalescer(ABC):
    """Sends the items handed in while the previous batch was on its way as one batch."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._writer: asyncio.Task[None] | None = None

    @abstractmethod
    async def _write(self, batch: list[Pending]) -> None:
        """Send ``batch`` and settle each of its items (:func:`settle`)."""

    async def submit(self, item: Any) -> Any:
        """Send ``item`` (with whatever else has arrived); returns its result."""
        pending = Pending(item)
        self._queue.append(pending)
        self._wake_writer()
        return await pending.done

    async def submit_many(self, items: Sequence[Any]) -> list[Any]:
        """Send ``items`` in this order (with whatever else has arrived); their results."""
        pendings = [Pending(item) for item in items]
        self._queue.extend(pendings)
        self._wake_writer()
        return list(await asyncio.gather(*(p.done for p in pendings)))

    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            # A task, not a direct call: callers woken in the same pass of the loop (the previous
            # batch's callers, say) queue their items before it runs, and go out together.
            self._writer = asyncio.create_task(self._write_queued(), name=f"{type(self).__name__}-writer")

    async def _write_queued(self) -> None:
        batch: list[Pending] = []
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


class StatementBatcher(Coalescer):
    """Runs one statement for the items handed in while the previous one ran."""

    #: What a batch is, for the log.
    what = "rows"

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        super().__init__(max_batch)
        self.db = db
        #: Statements sent and items written (for tests and benchmarks).
        self.statements = 0
        self.items = 0

    @abstractmethod
    def key(self, item: Any) -> Hashable:
        """The key of ``item``'s row in the statement's result."""

    @abstractmethod
    async def run(self, conn: Any, items: Sequence[Any]) -> dict[Hashable, Any]:
        """Run the statement for ``items`` on ``conn`` (a driver connection); rows by :meth:`key`."""

    async def _write(self, batch: list[Pending]) -> None:
        try:
            async with self.db.driver_connection() as conn:
                rows = await self.run(conn, [p.item for p in batch])
        except Exception as error:  # noqa: BLE001 - reported to each caller below
            if len(batch) == 1 or is_unavailable(error):  # the database is away: all fail alike
                for pending in batch:
                    settle(pending, error=error)
                return
            log.warning("writing %d %s together failed (%s); writing them one by one", len(batch), self.what, error)
            for pending in batch:
                await self._write([pending])
            return
        self.statements += 1
        self.items += len(batch)
        for pending in batch:
            settle(pending, result=rows.get(self.key(pending.item)))


def settle(pending: Pending, *, result: Any = None, error: BaseException | None = None) -> None:
    """Hand ``pending``'s caller its result or error (unless it was cancelled meanwhile)."""
    if pending.done.done():
        return
    if error is not None:
        pending.done.set_exception(error)
    else:
        pending.done.set_result(result)
