"""Redis commands of concurrent callers sent together, as one pipeline.

Every request and every task costs a few Redis commands (the admission check, the event
publishes, the cache reads and invalidations). One by one, each is a socket write, a wake-up for
its reply and a pass through redis-py's connection checkout; under load most of a process's Redis
CPU. A :class:`CommandBatcher` sends the commands that arrive while the previous ones are on
their way as one pipeline (not a transaction: each command succeeds or fails alone, and each
caller gets its own reply or error). When Redis cannot be reached every caller of the batch gets
that error, as a lone command's caller would.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from agentlightning.storage.batching import Coalescer, Pending, settle

#: The most commands in one pipeline.
MAX_COMMANDS = 256


class CommandBatcher(Coalescer):
    """Runs the commands handed in while the previous pipeline ran as the next pipeline."""

    def __init__(self, client: aioredis.Redis, max_batch: int = MAX_COMMANDS) -> None:
        super().__init__(max_batch)
        self.client = client
        #: Round trips made and commands sent (for tests and benchmarks).
        self.round_trips = 0
        self.commands = 0

    async def execute(self, *args: Any) -> Any:
        """Run one command (``"GET", key``) with whatever else has arrived; its reply."""
        return await self.submit(args)

    async def _write(self, batch: list[Pending]) -> None:
        self.round_trips += 1
        self.commands += len(batch)
        if len(batch) == 1:
            try:
                reply = await self.client.execute_command(*batch[0].item)
            except Exception as error:  # noqa: BLE001 - the caller's to handle, as if it had sent it
                settle(batch[0], error=error)
            else:
                settle(batch[0], result=reply)
            return
        pipe = self.client.pipeline(transaction=False)
        for pending in batch:
            pipe.execute_command(*pending.item)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except Exception as error:  # noqa: BLE001 - Redis unreachable: every caller gets it
            for pending in batch:
                settle(pending, error=error)
            return
        for pending, reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                settle(pending, error=reply)
            else:
                settle(pending, result=reply)
