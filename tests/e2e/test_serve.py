"""The real server process, started with the CLI, over real HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import CLI, ServerProcess

ADMIN_PASSWORD = "e2e-admin-password-long"


def _exercise(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        health = client.get("/api/v2/health", params={"ready": 1})
        assert health.status_code == 200, health.text
        assert health.headers["x-frame-options"] == "DENY"
        login = client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        profile = client.get("/auth/profile", headers=headers).json()
        assert profile["data"]["role"] == "admin" and profile["data"]["permissions"] == ["*"]
        assert client.get("/docs").status_code == 200
        assert "http_requests_total" in client.get("/metrics").text
        stats = client.get("/api/v2/system/stats", headers=headers)
        assert stats.status_code == 200 and stats.json()["data"]["users"] >= 1


def test_serve_on_sqlite(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        "REDIS_URL": "",
        "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGL_RUN_SERVICES": "false",
    }
    server = ServerProcess(env, tmp_path / "server.log")
    server.start()
    try:
        _exercise(server)
    finally:
        server.stop()


def test_serve_on_postgres_and_redis(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AGL_RUN_SERVICES": "false",
        "AGL_EVENTS_PREFIX": "agle2e",
    }
    # The session's database may already have an admin from other tests; use a fresh one here.
    from tests.services import create_postgres_database, drop_postgres_database

    fresh = create_postgres_database("agl_e2e")
    env["DATABASE_URL"] = fresh
    server = ServerProcess(env, tmp_path / "server.log")
    try:
        server.start()
        _exercise(server)
    finally:
        server.stop()
        drop_postgres_database(fresh)


def test_first_start_generates_and_prints_an_admin_password(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gen.db'}",
        "REDIS_URL": "",
        "AGL_ADMIN_PASSWORD": "",
        "AGL_RUN_SERVICES": "false",
    }
    server = ServerProcess(env, tmp_path / "server.log")
    server.start()
    try:
        line = next(line for line in server.log().splitlines() if "with password:" in line)
        password = line.rsplit("with password:", 1)[1].strip()
        assert len(password) >= 20
        login = httpx.post(f"{server.url}/auth/login", json={"username": "admin", "password": password})
        assert login.status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"JWT_SECRET": ""}, "JWT_SECRET is the built-in development default"),
        ({"JWT_SECRET": "too-short"}, "shorter than 32"),
        ({"JWT_SECRET": "k" * 40, "AGL_ADMIN_PASSWORD": "admin"}, "AGL_ADMIN_PASSWORD"),
    ],
)
def test_production_refuses_unsafe_secrets(tmp_path: Path, env: dict[str, str], reason: str) -> None:
    import os

    full_env = {
        **os.environ,
        "AGL_ENV": "production",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        **env,
    }
    if not env.get("JWT_SECRET"):
        full_env.pop("JWT_SECRET", None)
    result = subprocess.run([*CLI, "serve"], env=full_env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert reason in result.stdout + result.stderr
    assert not (tmp_path / "p.db").exists()  # refused before touching anything
