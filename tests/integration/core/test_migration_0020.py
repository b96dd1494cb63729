"""Migration ``0020``: the rollout-level rewards of the day before it count as handled by the bandit
(its sweep looks back a day), older ones and rewards of one span do not, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from agentlightning.storage.db import Database
from agentlightning.storage.migrate import upgrade
from agentlightning.storage.models import BanditObservation, Reward, Rollout
from agentlightning.storage.types import utcnow
from tests.services import postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the backend's kind, migrated by the test itself."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    with postgres_database("agl_mig", revision=None) as url:
        yield url


async def test_rewards_of_the_last_day_count_as_handled(fresh_url: str) -> None:
    upgrade(fresh_url, "0019")
    db = Database(fresh_url)
    now = utcnow()
    try:
        async with db.session() as session:
            await session.execute(
                insert(Rollout).values(id="r1", source="sdk", status="completed", created_at=now, updated_at=now)
            )
            rewards = [
                {"value": 1.0, "created_at": now - timedelta(hours=2)},  # recent, whole rollout: handled
                {"value": 0.0, "created_at": now - timedelta(days=3)},  # older than the sweep looks
                {"value": 0.5, "created_at": now - timedelta(hours=1), "span_id": "s1"},  # one span's
            ]
            ids = [
                (
                    await session.execute(
                        insert(Reward).values(rollout_id="r1", source="verifier", **r).returning(Reward.id)
                    )
                ).scalar_one()
                for r in rewards
            ]
            await session.commit()
        upgrade(fresh_url)
        async with db.session() as session:
            handled = (await session.execute(select(BanditObservation.reward_id, BanditObservation.learned))).all()
        assert handled == [(ids[0], None)]
    finally:
        await db.dispose()
