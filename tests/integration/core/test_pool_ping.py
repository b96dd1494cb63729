"""Pooled PostgreSQL connections: no ping while hot, a broken idle connection is replaced."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from agentlightning.storage.db import Database


async def test_hot_connections_are_not_pinged_and_dead_idle_ones_are_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_url, pool_size=1, max_overflow=0)
    dialect = db.engine.sync_engine.dialect
    pings: list[bool] = []
    real_ping = dialect.do_ping

    def counting_ping(conn: object) -> bool:
        pings.append(True)
        return real_ping(conn)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    try:
        async with db.session() as s:
            pid = await s.scalar(text("SELECT pg_backend_pid()"))
        for _ in range(3):  # reused at once: no liveness round trip
            async with db.session() as s:
                assert await s.scalar(text("SELECT pg_backend_pid()")) == pid
        assert pings == []

        other = Database(postgres_url, pool_size=1, max_overflow=0)
        try:
            async with other.session() as s:
                await s.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await other.dispose()
        await asyncio.sleep(1.2)  # idle past the threshold: checked before use, then replaced
        async with db.session() as s:
            new_pid = await s.scalar(text("SELECT pg_backend_pid()"))
        assert new_pid != pid
        assert pings  # the idle connection was checked
    finally:
        await db.dispose()
