"""Shared fixtures: both storage backends, the app with its lifespan, and logged-in clients.

``backend`` runs a test twice: on SQLite with the in-process cache and bus, and on a fresh
PostgreSQL database with Redis. PostgreSQL and Redis must be up: their absence fails the run.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from agentlightning.agents.pool import WorkerPool
from agentlightning.api.app import create_app
from agentlightning.core.context import AppContext
from agentlightning.settings import Settings
from agentlightning.storage.migrate import upgrade
from tests.helpers import cancel_unfinished_tasks, login_as, make_settings, serve_app
from tests.services import RedisSlot, postgres_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database index held by this test session."""
    slot = RedisSlot()
    url = slot.acquire()
    yield url
    slot.release()


@pytest.fixture(scope="session")
def sqlite_url() -> Iterator[str]:
    """A migrated SQLite file for this test session."""
    with tempfile.TemporaryDirectory(prefix="agl-test-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'agl.db'}"
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def events_prefix() -> str:
    """A pub/sub channel prefix private to this test session."""
    return f"agltest{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which storage stack a test runs on."""
    return str(request.param)


@pytest.fixture
def settings_factory(backend: str, request: pytest.FixtureRequest, events_prefix: str) -> Callable[..., Settings]:
    """Build settings for the current backend with overrides."""

    # Resolved now, outside any event loop: the session fixtures run asyncio themselves.
    if backend == "postgres":
        db_url = request.getfixturevalue("postgres_url")
        cache_url: str | None = request.getfixturevalue("redis_url")
    else:
        db_url = request.getfixturevalue("sqlite_url")
        cache_url = None

    def _factory(**overrides: Any) -> Settings:
        return make_settings(db_url, cache_url, events_prefix, **overrides)

    return _factory


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Default test settings for the current backend."""
    return settings_factory()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (context open, admin created)."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def ctx(app: FastAPI) -> AppContext:
    """The running app's context."""
    return app.state.ctx


@pytest.fixture
def login(client: httpx.AsyncClient, app: FastAPI) -> Callable[[str], Awaitable[dict[str, str]]]:
    """``await login("developer")`` -> headers of a fresh user with that role."""

    async def _login(role: str) -> dict[str, str]:
        return await login_as(client, app, role)

    return _login


@pytest.fixture
async def pool(app: FastAPI, settings: Settings) -> AsyncIterator[WorkerPool]:
    """A worker pool running in the test's app (as ``serve`` runs it), on a queue holding only
    this test's tasks (what earlier tests left unfinished is cancelled first)."""
    await cancel_unfinished_tasks(app.state.ctx)
    workers = WorkerPool(settings)
    await workers.start(app.state.ctx)
    try:
        yield workers
    finally:
        await workers.stop()


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The running app served over real HTTP/WebSocket by uvicorn on this event loop."""
    async with serve_app(app) as url:
        yield url
