"""Start the real ``agentlightning serve`` process for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.redis_server import free_port

CLI = [sys.executable, "-m", "agentlightning.cli"]


class ServerProcess:
    """``agentlightning serve`` in a child process with its own environment and log file."""

    def __init__(self, env: dict[str, str], log_path: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.args = [*CLI, "serve", "--port", str(self.port), *extra_args]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v2/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(env: dict[str, str], log_path: Path, *args: str, timeout: float = 90.0) -> subprocess.Popen[bytes]:
    """``agentlightning worker *args`` in a child process, returned once it logs ``ready``."""
    log = log_path.open("wb")
    proc = subprocess.Popen([*CLI, "worker", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while "ready" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    return proc


async def admin_with_agent(
    http: httpx.AsyncClient, password: str, prefix: str, max_concurrency: int
) -> tuple[str, dict[str, str], str]:
    """Log in as ``admin`` and create an uncached agent named ``{prefix}_<random>`` of type
    ``{prefix}_agent``; returns the token, the auth headers and the agent's name."""
    login = await http.post("/auth/login", json={"username": "admin", "password": password})
    token = login.json()["data"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    created = await http.post(
        "/api/v2/agents",
        json={"name": name, "type": f"{prefix}_agent", "config": {"max_concurrency": max_concurrency, "cache": False}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return token, headers, name
