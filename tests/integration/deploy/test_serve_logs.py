"""The real ``agentlightning serve`` in production mode writes JSON lines; its access log lines carry
the request id the client sent, the authenticated user and the route template."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.server import ServerProcess

ADMIN_PASSWORD = "deploy-admin-password-long"


def test_production_serve_logs_json_with_request_context(tmp_path: Path) -> None:
    env = {
        "AGL_ENV": "production",
        "JWT_SECRET": "j" * 48,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}",
        "REDIS_URL": "",
        "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGL_RUN_SERVICES": "false",
    }
    server = ServerProcess(env, tmp_path / "server.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            login = client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert login.status_code == 200, login.text
            token = login.json()["data"]["access_token"]
            profile = client.get(
                "/auth/profile", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req_deploylog42"}
            )
            assert profile.status_code == 200
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert lines, server.log()
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "request_id", "user", "route"} <= set(line)
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "/auth/profile" in line["message"]]
    assert access, server.log()
    assert access[0]["request_id"] == "req_deploylog42"
    assert access[0]["user"] == "admin" and access[0]["route"] == "/auth/profile"
    startup = [line for line in lines if line["logger"] == "uvicorn.error"]
    assert startup and all(line["request_id"] is None for line in startup)
