"""Statements run on the driver connection: parameters processed as SQLAlchemy would, results
decoded, and a connection left in an unknown state never handed out again."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from sqlalchemy import Integer, String, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from agentlightning.storage.db import Database
from agentlightning.storage.driver import DriverStatement
from agentlightning.storage.types import Timestamp

ECHO = DriverStatement(
    text(
        "SELECT CAST(:doc AS jsonb) || jsonb_build_object('n', :n) AS doc, :n + :n AS twice, "
        "CAST(:at AS timestamptz) AS at, CAST(:label AS varchar) AS label"
    ).bindparams(
        bindparam("doc", type_=JSONB),
        bindparam("n", type_=Integer),
        bindparam("at", type_=Timestamp),
        bindparam("label", type_=String),
    )
)
PID = DriverStatement(text("SELECT pg_backend_pid() AS pid"))
SLEEP = DriverStatement(
    text("SELECT pg_sleep(CAST(:seconds AS float)) AS slept").bindparams(bindparam("seconds", type_=Integer))
)
BAD = DriverStatement(text("SELECT CAST(:value AS integer) AS n").bindparams(bindparam("value", type_=String)))


def test_a_name_used_twice_is_one_positional_parameter() -> None:
    assert ECHO.names == ("doc", "n", "at", "label")
    assert "$2" in ECHO.sql and "$5" not in ECHO.sql


async def test_parameters_are_encoded_and_rows_decoded_like_sqlalchemy(postgres_url: str) -> None:
    db = Database(postgres_url, pool_size=1, max_overflow=0)
    naive = datetime(2026, 1, 2, 3, 4, 5)  # the UTC type stores naive datetimes as UTC
    try:
        async with db.driver_connection() as conn:
            row = await ECHO.fetchrow(conn, {"doc": {"a": [1, "x"]}, "n": 21, "at": naive, "label": None})
        assert row["doc"] == {"a": [1, "x"], "n": 21}
        assert row["twice"] == 42
        assert row["at"] == naive.replace(tzinfo=timezone.utc)
        assert row["label"] is None
    finally:
        await db.dispose()


async def test_a_refused_statement_keeps_the_connection_and_a_cancelled_one_is_discarded(
    postgres_url: str,
) -> None:
    db = Database(postgres_url, pool_size=1, max_overflow=0)
    try:
        async with db.driver_connection() as conn:
            first = (await PID.fetchrow(conn, {}))["pid"]
        with pytest.raises(asyncpg.InvalidTextRepresentationError):
            async with db.driver_connection() as conn:
                await BAD.fetchrow(conn, {"value": "not a number"})
        async with db.driver_connection() as conn:
            assert (await PID.fetchrow(conn, {}))["pid"] == first  # refused by the server: still sound

        async def slow() -> None:
            async with db.driver_connection() as conn:
                await SLEEP.fetchrow(conn, {"seconds": 30})

        running = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        # Cancelled mid-statement: the next caller gets a fresh connection, not one still busy.
        async with db.driver_connection() as conn:
            again = (await PID.fetchrow(conn, {}))["pid"]
        assert again != first
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.dispose()


def test_timestamps_keep_their_zone() -> None:
    aware = datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert ECHO.arguments({"doc": {}, "n": 1, "at": aware, "label": "x"})[2] == aware
