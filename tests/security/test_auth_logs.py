"""Tokens never reach the server's output: a real ``agentlightning serve`` process with its access
log on is called over REST and WebSocket (the token in the header, the subprotocol and, the
legacy way, the query string) and its whole output is searched for the credentials."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import websockets

from tests.e2e.server import ServerProcess

ADMIN_PASSWORD = "logs-admin-password-long"


async def _websocket_calls(url: str, token: str, api_key: str) -> None:
    ws_base = url.replace("http://", "ws://") + "/ws/agents"
    async with websockets.connect(f"{ws_base}?token={token}") as ws:  # legacy: token in the URL
        assert '"connected"' in await asyncio.wait_for(ws.recv(), 30)
    async with websockets.connect(ws_base, subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        assert '"connected"' in await asyncio.wait_for(ws.recv(), 30)
    async with websockets.connect(ws_base, additional_headers={"X-API-Key": api_key}) as ws:
        assert '"connected"' in await asyncio.wait_for(ws.recv(), 30)
    # a wrong token is refused: accepted, then closed with 4401 (so every client sees why)
    async with websockets.connect(f"{ws_base}?token={token}x") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_tokens_do_not_appear_in_the_server_output(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}",
        "REDIS_URL": "",
        "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGL_RUN_SERVICES": "false",
    }
    server = ServerProcess(env, tmp_path / "server.log", "--log-level", "debug")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            pair = client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["data"]
            token, refresh = pair["access_token"], pair["refresh_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            assert client.get("/auth/profile", headers=bearer).status_code == 200
            assert client.get("/auth/profile", params={"token": token}).status_code == 401
            api_key = client.post("/auth/api-keys", json={"name": "logs"}, headers=bearer).json()["data"]["key"]
            asyncio.run(_websocket_calls(server.url, token, api_key))
            rotated = client.post("/auth/refresh", json={"refresh_token": refresh}).json()["data"]
            assert client.post("/auth/logout", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    finally:
        server.stop()
    output = server.log()
    assert "/ws/agents" in output and "/auth/profile" in output  # the access log is on
    for secret in (token, refresh, rotated["access_token"], api_key, ADMIN_PASSWORD):
        assert secret not in output
    # JWT segments are long enough that a partial leak would show too.
    for part in token.split("."):
        assert part not in output
