"""Task outcomes on PostgreSQL: outcomes that arrive together are stored by one statement.

A worker runs many tasks at once, and their outcomes arrive while the previous outcome's statement
is still on its way to the database.  Instead of one statement (one round trip, one commit) per
outcome, :class:`OutcomeWriter` sends what has arrived in the meantime as one
:data:`~agentlightning.agents.queue_pg.FINISH`: the database commits them together (each task's
trace, status, event and rollout still in one transaction) and returns which leases were still
held.  Nothing waits on a timer: a lone outcome is written at once, and batches form only while
the database is busy, which is when they help.

A batch is all or nothing in the database, so one outcome the database refuses (a result it
cannot store) must not take others with it: when the database refuses a batch, its outcomes are
written again one by one and only the refused one reports the error.  When the database cannot be
reached, every caller gets that error at once, as a lone statement's caller would.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentlightning.agents import queue_pg
from agentlightning.storage.faults import is_unavailable

if TYPE_CHECKING:
    from agentlightning.storage.db import Database

log = logging.getLogger(__name__)

#: The most outcomes in one statement.
MAX_BATCH = 64


@dataclass(slots=True)
class _Pending:
    outcome: dict[str, Any]
    spans: list[dict[str, Any]]
    stored: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class OutcomeWriter:
    """Writes task outcomes, several to a statement when they arrive together."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        #: Statements sent and outcomes written (for tests and benchmarks).
        self.statements = 0
        self.outcomes = 0

    async def store(self, outcome: dict[str, Any], spans: list[dict[str, Any]]) -> Any:
        """Store ``outcome`` (a :func:`~agentlightning.agents.queue_pg.outcome_row`) and ``spans``;
        returns its row (``id``, ``created_by``, ``event_id``), or None when the lease was lost.

        A caller cancelled before its outcome was sent takes it back; once sent, it is stored.
        """
        pending = _Pending(outcome, spans)
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="task-outcome-writer")
        return await pending.stored

    async def _write_queued(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._queue:
                batch = [p for p in self._queue[: self.max_batch] if not p.stored.done()]
                del self._queue[: self.max_batch]
                if batch:
                    await self._write(batch)
                batch = []
        except BaseException as error:  # cancelled (shutdown): nobody may wait forever
            for pending in [*batch, *self._queue]:
                if pending.stored.done():
                    continue
                if isinstance(error, Exception):
                    pending.stored.set_exception(error)
                else:
                    pending.stored.cancel()
            self._queue.clear()
            raise

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            rows = await self._statement(batch)
        except Exception as error:  # noqa: BLE001 - reported to each caller below
            if len(batch) == 1 or is_unavailable(error):  # the database is away: all fail alike
                for pending in batch:
                    _settle(pending, error=error)
                return
            log.warning("storing %d outcomes together failed (%s); storing them one by one", len(batch), error)
            for pending in batch:
                await self._write([pending])
            return
        for pending in batch:
            _settle(pending, row=rows.get(pending.outcome["task_id"]))

    async def _statement(self, batch: list[_Pending]) -> dict[int, Any]:
        params = {"outcomes": [p.outcome for p in batch], "spans": [s for p in batch for s in p.spans]}
        async with self.db.driver_connection() as conn:
            rows = await queue_pg.FINISH.fetch(conn, params)
        self.statements += 1
        self.outcomes += len(batch)
        return {row["id"]: row for row in rows}


def _settle(pending: _Pending, *, row: Any = None, error: BaseException | None = None) -> None:
    if pending.stored.done():  # its caller was cancelled meanwhile
        return
    if error is not None:
        pending.stored.set_exception(error)
    else:
        pending.stored.set_result(row)
