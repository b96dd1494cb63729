"""``Database.write_session``: on SQLite the queue's writers of one process take turns in arrival
order (SQLite's own busy handler sleeps and polls); on PostgreSQL it is a plain session."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from agentlightning.core.context import AppContext


async def _spin(turns: int = 50) -> None:
    """Let every ready task run a step, ``turns`` times (no wall-clock wait)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_writers_take_turns_on_sqlite_and_not_on_postgres(ctx: AppContext, backend: str) -> None:
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with ctx.db.write_session() as session:
            await session.execute(text("SELECT 1"))
            order.append("first in")
            holding.set()
            await release.wait()
            order.append("first out")

    async def later(name: str) -> None:
        async with ctx.db.write_session() as session:
            order.append(name)
            await session.execute(text("SELECT 1"))

    holder = asyncio.create_task(first())
    await holding.wait()
    second = asyncio.create_task(later("second"))
    await _spin()
    third = asyncio.create_task(later("third"))
    if backend == "sqlite":
        await _spin()
        assert order == ["first in"]  # both wait for the holder, without touching SQLite's lock
        release.set()
        await asyncio.gather(holder, second, third)
        assert order == ["first in", "first out", "second", "third"]  # in arrival order
    else:
        await asyncio.gather(second, third)  # PostgreSQL: nobody waits for the holder
        assert order == ["first in", "second", "third"]
        release.set()
        await holder
