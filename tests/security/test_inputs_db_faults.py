"""Database faults answer 503 ``DATABASE_UNAVAILABLE`` with ``Retry-After``, never a 500.

The app talks to PostgreSQL through a proxy (:mod:`tests.security.pg_proxy`) that plays what a
restart looks like to a client: open connections cut, then "the database system is starting up"
(57P03) to new ones, then the port refused; and, on the real server, ``pg_terminate_backend`` of
the app's connections. Every REST entry point answers 503 while it lasts, the WebSocket closes
with 1013 (try again later), and everything answers 200 again when the database is back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from websockets.exceptions import ConnectionClosed

from agentlightning.api.app import create_app
from agentlightning.storage.faults import is_bad_data, is_unavailable
from tests.helpers import login_as, make_settings, serve_app, unique
from tests.security.pg_proxy import PgProxy

# Reads that query the database on every call (``/auth/profile`` is served from the cached user
# record, so it keeps answering while the database is down: not a fault to test here).
READS = ("/api/v2/agents", "/api/v2/tasks", "/api/v2/knowledge", "/api/v2/rl/experiments", "/api/v2/system/stats")


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    assert response.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"


@pytest.fixture
async def proxy() -> AsyncIterator[PgProxy]:
    server = PgProxy()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxied_app(postgres_url: str, redis_url: str, events_prefix: str, proxy: PgProxy) -> AsyncIterator[FastAPI]:
    url = postgres_url.replace("127.0.0.1:5432", proxy.url_host)
    assert url != postgres_url
    app = create_app(make_settings(url, redis_url, events_prefix))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        yield app


@pytest.fixture
async def proxied_client(proxied_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=proxied_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _every_entry_point_is_unavailable(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for path in READS:
        _assert_unavailable(await client.get(path, headers=headers))
    _assert_unavailable(await client.get("/api/v2/agents/some-agent", headers=headers))
    _assert_unavailable(await client.post("/api/v2/agents", json={"name": unique("a"), "type": "t"}, headers=headers))
    _assert_unavailable(await client.post("/auth/login", json={"username": "nobody", "password": "x" * 12}))
    ready = await client.get("/api/v2/health", params={"ready": 1})
    assert ready.status_code == 503


async def test_restart_and_refused_port_answer_503_then_recover(
    proxied_app: FastAPI, proxied_client: httpx.AsyncClient, proxy: PgProxy
) -> None:
    headers = await login_as(proxied_client, proxied_app, "developer")
    assert (await proxied_client.get("/api/v2/agents", headers=headers)).status_code == 200

    # A restart: pooled connections die, new ones hear "the database system is starting up".
    proxy.mode = "starting"
    proxy.cut()
    await _every_entry_point_is_unavailable(proxied_client, headers)

    # The server is gone: connection refused.
    await proxy.refuse()
    await _every_entry_point_is_unavailable(proxied_client, headers)

    # Back: the pool reconnects and everything answers again.
    await proxy.start()
    proxy.mode = "forward"
    for path in READS:
        response = await proxied_client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_terminated_backends_never_answer_500(client: httpx.AsyncClient, app: FastAPI, backend: str) -> None:
    headers = await login_as(client, app, "developer")
    for _ in range(3):
        assert (await client.get("/api/v2/agents", headers=headers)).status_code == 200
        database = app.state.settings.database_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(
            app.state.settings.database_url.replace("+asyncpg", "").rsplit("/", 1)[0] + "/postgres"
        )
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", database
            )
        finally:
            await admin.close()
        assert killed >= 1
        # The very next request meets a dead connection: a retry-able 503 at worst, never a 500.
        response = await client.get("/api/v2/agents", headers=headers)
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            _assert_unavailable(response)
        assert (await client.get("/api/v2/agents", headers=headers)).status_code == 200


async def _recv(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 30))


async def test_websocket_closes_with_try_again_later(
    proxied_app: FastAPI, proxied_client: httpx.AsyncClient, proxy: PgProxy
) -> None:
    headers = await login_as(proxied_client, proxied_app, "developer")
    async with serve_app(proxied_app) as live:
        async with websockets.connect(f"ws://{live}/ws/agents", additional_headers=headers) as ws:
            assert (await _recv(ws))["type"] == "connected"
            await proxy.refuse()
            await ws.send(json.dumps({"action": "subscribe", "agent_id": "some-agent"}))
            message = await _recv(ws)
            assert message["type"] == "error" and message["error"]["code"] == "DATABASE_UNAVAILABLE"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        await proxy.start()


def test_fault_classification() -> None:
    unavailable: list[BaseException] = [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        ConnectionRefusedError(111, "Connect call failed"),
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 0 reached"),
        sa_exc.DBAPIError("SELECT 1", None, Exception("closed"), connection_invalidated=True),
    ]
    for error in unavailable:
        assert is_unavailable(error), error
    wrapped = sa_exc.DBAPIError("SELECT 1", None, Exception("x"))
    wrapped.__cause__ = asyncpg.CannotConnectNowError("the database system is starting up")
    assert is_unavailable(wrapped)
    bugs: list[BaseException] = [
        sa_exc.IntegrityError("INSERT", None, Exception("duplicate key")),
        ValueError("nope"),
        FileNotFoundError("checkpoint.zip"),
        asyncio.TimeoutError(),
    ]
    for error in bugs:
        assert not is_unavailable(error), error
    data = asyncpg.exceptions._base.DataError("invalid input for query argument $1 (value out of int32 range)")
    assert is_bad_data(data) and not is_unavailable(data)
    assert is_bad_data(asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'))
