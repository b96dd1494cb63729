"""Run the Alembic migrations shipped inside the package, for either dialect."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` up to ``revision`` (safe to call when current)."""
    from agentlightning.storage.db import ensure_sqlite_folder

    ensure_sqlite_folder(database_url)
    config = alembic_config(database_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    # Called from inside an event loop: Alembic's env runs its own loop, so use a thread.
    errors: list[BaseException] = []

    def _target() -> None:
        try:
            command.upgrade(config, revision)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=_target, name="alembic-upgrade")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from sqlalchemy import text

    from agentlightning.storage.db import Database

    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            exists = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "alembic_version"))
            if not exists:
                return None
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
            return row[0] if row else None
    finally:
        await db.dispose()
