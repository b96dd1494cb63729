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

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

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
        try:
            replies = await send_commands(self.client, [pending.item for pending in batch])
        except Exception as error:  # noqa: BLE001 - Redis unreachable: every caller gets it
            for pending in batch:
                settle(pending, error=error)
            return
        for pending, reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                settle(pending, error=reply)
            else:
                settle(pending, result=reply)


async def send_commands(client: aioredis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run ``commands`` in one round trip (a lone one directly, several as a pipeline that is not a
    transaction); their replies in order, a refused command's error in its place. Raises when
    Redis cannot be reached."""
    if len(commands) == 1:
        try:
            return [await client.execute_command(*commands[0])]
        except ResponseError as refused:
            return [refused]
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=False))
