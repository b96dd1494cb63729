"""Helpers shared by tests: settings for a test stack, unique names, logging in as a role.

Fixtures live in ``conftest.py``; plain functions and constants live here so tests import them
from a module of their own rather than from pytest's conftest.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.auth.service import create_user
from agentlightning.core.context import AppContext
from agentlightning.errors import AppError
from agentlightning.settings import Settings, get_settings
from agentlightning.storage.models import Task
from agentlightning.vocabulary import TASK_ACTIVE

TEST_SECRET = "test-secret-" + "x" * 40
_counter = itertools.count()


def make_settings(database_url: str, redis_url: str | None, events_prefix: str, **overrides: Any) -> Settings:
    """Settings for tests: fast bcrypt, generous rate limits, no background services unless asked."""
    values: dict[str, Any] = {
        "agl_env": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "agl_events_prefix": events_prefix,
        "jwt_secret": TEST_SECRET,
        "bcrypt_rounds": 4,
        "agl_admin_password": "admin-password-for-tests",
        "rate_limit_default": "100000/minute",
        "rate_limit_anonymous": "100000/minute",
        "rate_limit_login": "100000/minute",
        "agl_run_services": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(_counter)}"


async def login_as(client: httpx.AsyncClient, app: FastAPI, role: str) -> dict[str, str]:
    """Create a user with ``role``, log in, and return the Authorization header."""
    username = unique(role)
    password = "correct-horse-battery"
    await create_user(app.state.ctx, username, password, role)
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def poll_until_finished(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    url: str,
    finished: tuple[str, ...],
    timeout: float,
    interval: float,
    what: str,
) -> dict[str, Any]:
    """GET ``url`` (an envelope whose ``data`` has a ``status``) until the status is one of
    ``finished``; fails with the last state after ``timeout`` seconds (polling, never a fixed sleep
    standing in for an event: the deadline is generous for a loaded machine)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        if data["status"] in finished:
            return data
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} still {data['status']} after {timeout}s: {data}")
        await asyncio.sleep(interval)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Check ``condition`` (sync or async) until it holds; fail naming ``what`` after ``timeout``
    seconds (for state that settles just after the event a test waited for)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not so after {timeout}s")
        await asyncio.sleep(interval)


async def cancel_unfinished_tasks(ctx: AppContext) -> int:
    """Cancel every pending or running task in the test session's database (through the
    scheduler, as a user would); returns how many.

    The session's database is shared by the tests, and some leave tasks queued or leased on
    purpose (claims without a worker, a worker stopped mid-task). A worker pool started later
    would otherwise reap and run them first, on whatever model that test serves: on the local
    model each costs minutes, and the test's own tasks wait behind them.
    """
    async with ctx.db.session() as session:
        ids = list(await session.scalars(select(Task.id).where(Task.status.in_(sorted(TASK_ACTIVE)))))
    scheduler = TaskScheduler(ctx)
    cancelled = 0
    for task_id in ids:
        with contextlib.suppress(AppError):  # finished meanwhile
            await scheduler.cancel(task_id)
            cancelled += 1
    return cancelled


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (its lifespan already running) over real HTTP/WebSocket on this event loop;
    yields ``host:port``."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, timeout=10)


@contextlib.contextmanager
def cli_environment(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, **env: str
) -> Iterator[None]:
    """The environment a CLI command run in-process reads its settings from: the test's database
    (and Redis on PostgreSQL) plus ``env``; the cached settings are cleared around it."""
    url = request.getfixturevalue("postgres_url" if backend == "postgres" else "sqlite_url")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url") if backend == "postgres" else "")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()
