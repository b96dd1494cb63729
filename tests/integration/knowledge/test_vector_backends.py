"""The vector backends against real databases: sqlite-vec (through an extension-capable SQLite
driver) and the in-process usearch index catching up with writes from other connections."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import numpy as np
import pysqlite3.dbapi2 as extension_sqlite
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from agentlightning.knowledge.embeddings import DIMENSION
from agentlightning.knowledge.search.usearch_backend import UsearchBackend
from agentlightning.knowledge.search.vectors import SqliteVecBackend, get_backend
from agentlightning.settings import Settings
from agentlightning.storage.db import Database
from agentlightning.storage.migrate import upgrade
from agentlightning.storage.models.knowledge import KnowledgeEmbeddingTombstone


def _unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


async def _add_items(session, ids: list[int]) -> None:  # noqa: ANN001
    await session.execute(
        text("INSERT INTO knowledge_items (id, title, content) VALUES (:id, 't', 'c')"), [{"id": i} for i in ids]
    )


async def test_sqlite_vec_backend(tmp_path: Path) -> None:
    path = tmp_path / "vec.db"
    upgrade(f"sqlite+aiosqlite:///{path}")

    async def connect() -> aiosqlite.Connection:
        # The stdlib sqlite3 here cannot load extensions; pysqlite3 can.
        return await aiosqlite.Connection(lambda: extension_sqlite.connect(str(path), check_same_thread=False), 64)

    engine = create_async_engine("sqlite+aiosqlite://", async_creator=connect)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    backend = SqliteVecBackend("sqlite")
    try:
        async with sessions() as session:
            await _add_items(session, [1, 2, 3])
            await backend.upsert(session, [(1, _unit(1)), (2, _unit(2)), (3, _unit(3))], "m")
            await session.commit()
        async with sessions() as session:
            hits = await backend.search(session, _unit(2), 2, "m")
            assert hits[0][0] == 2 and hits[0][1] > 0.99 and len(hits) == 2
            await backend.upsert(session, [(2, _unit(9))], "m")  # replacing a vector
            await backend.delete(session, [3])
            await session.commit()
        async with sessions() as session:
            hits = await backend.search(session, _unit(9), 5, "m")
            assert [h[0] for h in hits][:1] == [2] and 3 not in {h[0] for h in hits}
            count = (await session.execute(text("SELECT count(*) FROM knowledge_embeddings"))).scalar()
            assert count == 2
    finally:
        await engine.dispose()


async def test_usearch_catches_up_with_late_commits(postgres_url: str) -> None:
    db = Database(postgres_url)
    backend = UsearchBackend("postgresql")
    base = 900_000  # ids no other test uses
    try:
        async with db.session() as session:
            await session.execute(text("DELETE FROM knowledge_items WHERE id >= :b"), {"b": base})
            await _add_items(session, [base + 1, base + 2, base + 3])
            await session.commit()
        # A transaction takes its rev first but commits after a later one (and after a search).
        slow = db.session()
        slow_session = await slow.__aenter__()
        await backend.upsert(slow_session, [(base + 1, _unit(1))], "m")
        async with db.session() as session:
            await backend.upsert(session, [(base + 2, _unit(2))], "m")
            await session.commit()
        async with db.session() as session:
            found = {i for i, _ in await backend.search(session, _unit(1), 50, "m")}
            assert base + 2 in found and base + 1 not in found
        await slow_session.commit()
        await slow.__aexit__(None, None, None)
        async with db.session() as session:
            hits = await backend.search(session, _unit(1), 50, "m")
            assert hits[0][0] == base + 1, "the late commit was picked up through the gap list"
        # Updates replace the vector; local deletions leave the index at once.
        async with db.session() as session:
            await backend.upsert(session, [(base + 2, _unit(7))], "m")
            await session.commit()
            assert (await backend.search(session, _unit(7), 1, "m"))[0][0] == base + 2
        backend.forget([base + 2])
        async with db.session() as session:
            assert base + 2 not in {i for i, _ in await backend.search(session, _unit(7), 50, "m")}
            await session.execute(text("DELETE FROM knowledge_items WHERE id >= :b"), {"b": base})
            await session.commit()
        assert (await backend.health())["backend"] == "usearch"
    finally:
        await db.dispose()


async def test_usearch_index_is_loop_independent(postgres_url: str) -> None:
    backend = UsearchBackend("postgresql")
    db = Database(postgres_url)
    try:

        async def one() -> None:
            async with db.session() as session:
                await backend.sync(session, "m")

        await asyncio.gather(one(), one())
    finally:
        await db.dispose()


async def _delete_items(session, ids: list[int]) -> None:  # noqa: ANN001
    await session.execute(
        text("DELETE FROM knowledge_items WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)), {"ids": ids}
    )


async def test_usearch_catch_up_drops_deletions_and_updates_from_another_process(settings: Settings) -> None:
    """Two processes' indexes over one database: the second sees the first's deletions and updates."""
    writer_db = Database(settings.database_url, sqlite_extensions=False)
    reader_db = Database(settings.database_url, sqlite_extensions=False)
    writer, reader = UsearchBackend(writer_db.dialect), UsearchBackend(reader_db.dialect)
    base = 910_000 + (0 if writer_db.dialect == "sqlite" else 1000)
    ids = [base + i for i in range(1, 5)]
    try:
        async with writer_db.session() as session:
            await _delete_items(session, ids)
            await _add_items(session, ids)
            await writer.upsert(session, [(i, _unit(i)) for i in ids], "m")
            await session.commit()
        async with reader_db.session() as session:
            await reader.sync(session, "m")
            await reader.wait_ready()
            assert (await reader.search(session, _unit(ids[0]), 1, "m"))[0][0] == ids[0]
        # The writer deletes one item (its embedding cascades; the trigger logs it) and re-embeds another.
        async with writer_db.session() as session:
            await _delete_items(session, [ids[0]])
            await writer.upsert(session, [(ids[1], _unit(99))], "m")
            await session.commit()
        async with reader_db.session() as session:
            found = await reader.search(session, _unit(ids[0]), 10, "m")
            assert ids[0] not in {i for i, _ in found}, "a deletion by another process leaves this index"
            assert (await reader.search(session, _unit(99), 1, "m"))[0][0] == ids[1], "the new vector replaced the old"
            assert ids[1] not in {i for i, _ in (await reader.search(session, _unit(ids[1]), 10, "m"))[:1]}
            assert (await reader.health())["indexed"] >= 3
            await _delete_items(session, ids)
            await session.commit()
    finally:
        await writer_db.dispose()
        await reader_db.dispose()


async def test_usearch_answers_exactly_while_the_graph_builds(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold start: searches during the HNSW build are exact, and changes made meanwhile survive the swap."""
    db = Database(settings.database_url, sqlite_extensions=False)
    backend = UsearchBackend(db.dialect)
    release = threading.Event()
    real_build = backend._build_graph

    def slow_build(keys: np.ndarray, matrix: np.ndarray) -> object:
        release.wait(30)
        return real_build(keys, matrix)

    monkeypatch.setattr(backend, "_build_graph", slow_build)
    base = 920_000 + (0 if db.dialect == "sqlite" else 1000)
    ids = [base + i for i in range(1, 6)]
    try:
        async with db.session() as session:
            await _delete_items(session, [*ids, base + 50])
            await _add_items(session, ids)
            await backend.upsert(session, [(i, _unit(i)) for i in ids], "m")
            await session.commit()
        async with db.session() as session:
            hits = await backend.search(session, _unit(ids[2]), 3, "m")
            assert backend.state == "building"
            assert hits[0][0] == ids[2] and hits[0][1] > 0.999, "exact answer while the graph builds"
            # Changes during the build: one item deleted, one added.
            await _delete_items(session, [ids[0]])
            await _add_items(session, [base + 50])
            await backend.upsert(session, [(base + 50, _unit(50))], "m")
            await session.commit()
            assert (await backend.search(session, _unit(50), 1, "m"))[0][0] == base + 50
            assert ids[0] not in {i for i, _ in await backend.search(session, _unit(ids[0]), 10, "m")}
        release.set()
        await backend.wait_ready()
        async with db.session() as session:
            assert (await backend.search(session, _unit(50), 1, "m"))[0][0] == base + 50
            assert backend.state == "ready"
            assert ids[0] not in {i for i, _ in await backend.search(session, _unit(ids[0]), 10, "m")}
            await _delete_items(session, [*ids, base + 50])
            await session.commit()
    finally:
        release.set()
        await db.dispose()


async def test_app_sqlite_engine_loads_sqlite_vec(sqlite_url: str, tmp_path: Path) -> None:
    """The app's own SQLite engine runs on pysqlite3 here, so sqlite-vec is used for real."""
    db = Database(sqlite_url)
    fallback_url = f"sqlite+aiosqlite:///{tmp_path / 'stdlib.db'}"
    upgrade(fallback_url)
    fallback = Database(fallback_url, sqlite_extensions=False)
    try:
        assert db.sqlite_extensions
        async with db.session() as session:
            assert (await get_backend(session)).name == "sqlite-vec"
        async with fallback.session() as session:
            assert (await get_backend(session)).name == "usearch", "the stdlib driver falls back to usearch"
    finally:
        await db.dispose()
        await fallback.dispose()


async def test_index_snapshot_reloads_reconciled_and_refuses_foreign_data(settings: Settings, tmp_path: Path) -> None:
    """A saved index reloads without a build, reconciled with writes made since; a mismatch is refused."""
    from agentlightning.knowledge.search import index_snapshot

    db = Database(settings.database_url, sqlite_extensions=False)
    base = 930_000 + (0 if db.dialect == "sqlite" else 1000)
    ids = [base + i for i in range(1, 5)]
    path = tmp_path / "index.npz"
    try:
        saver = UsearchBackend(db.dialect)
        async with db.session() as session:
            await _delete_items(session, [*ids, base + 5])
            await _add_items(session, ids)
            await saver.upsert(session, [(i, _unit(i)) for i in ids], "m")
            await session.commit()
            await saver.sync(session, "m")
            await saver.wait_ready()
        assert await index_snapshot.save_snapshot(saver, path)
        # While "the server is down": one item deleted, one re-embedded, one added.
        async with db.session() as session:
            await _delete_items(session, [ids[0]])
            await saver.upsert(session, [(ids[1], _unit(77))], "m")
            await _add_items(session, [base + 5])
            await saver.upsert(session, [(base + 5, _unit(55))], "m")
            await session.commit()
        restored = UsearchBackend(db.dialect)
        async with db.session() as session:
            assert await index_snapshot.restore_snapshot(session, restored, path, "m")
            assert restored.state == "ready" and restored.build_seconds is None, "no graph build"
            assert ids[0] not in {i for i, _ in await restored.search(session, _unit(ids[0]), 10, "m")}
            assert (await restored.search(session, _unit(77), 1, "m"))[0][0] == ids[1]
            assert (await restored.search(session, _unit(55), 1, "m"))[0][0] == base + 5
            assert (await restored.search(session, _unit(ids[2]), 1, "m"))[0][0] == ids[2]
            # Another model's snapshot is not used.
            assert not await index_snapshot.restore_snapshot(session, UsearchBackend(db.dialect), path, "other")
            # Vectors that differ from the snapshot's (a database swapped underneath) are refused.
            await session.execute(
                text("UPDATE knowledge_embeddings SET embedding = :e WHERE item_id IN (:a, :b)"),
                {"e": _unit(1234).astype("<f4").tobytes(), "a": ids[2], "b": ids[3]},
            )
            await session.commit()
            assert not await index_snapshot.restore_snapshot(session, UsearchBackend(db.dialect), path, "m")
            # A snapshot ahead of the database's revs (a restored backup) is refused.
            snapshot = index_snapshot.read_snapshot(path)
            assert snapshot is not None
            ahead = {**snapshot.meta, "watermark": 10**12}
            index_snapshot._write(path, snapshot.index_bytes.tobytes(), ahead, snapshot.gaps)
            assert not await index_snapshot.restore_snapshot(session, UsearchBackend(db.dialect), path, "m")
            await _delete_items(session, [*ids, base + 5])
            await session.commit()
    finally:
        await db.dispose()


async def test_prune_tombstones_keeps_recent_ones_and_the_newest(settings: Settings) -> None:
    from agentlightning.knowledge.search.usearch_backend import prune_tombstones

    db = Database(settings.database_url, sqlite_extensions=False)
    try:
        async with db.session() as session:
            top = int(
                (
                    await session.execute(text("SELECT coalesce(max(rev), 0) FROM knowledge_embedding_tombstones"))
                ).scalar_one()
            )
            old = datetime(2000, 1, 1, tzinfo=UTC)
            session.add_all(
                KnowledgeEmbeddingTombstone(rev=top + 10**9 + i, item_id=940_000 + i, deleted_at=old) for i in range(3)
            )
            await session.flush()
            assert await prune_tombstones(session) >= 2
            left = (
                (await session.execute(text("SELECT rev FROM knowledge_embedding_tombstones WHERE item_id >= 940000")))
                .scalars()
                .all()
            )
            assert left == [top + 10**9 + 2], "the newest tombstone stays (SQLite's rev high-water mark)"
            await session.rollback()
    finally:
        await db.dispose()
