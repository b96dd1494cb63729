"""Helpers shared by the benchmark scripts: free ports, child servers, wrk runs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

#: One uvicorn worker as the benchmarks run our server (and the bare app): uvloop + httptools,
#: access log off, on loopback; append ``--port`` and the app.
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--workers",
    "1",
    "--log-level",
    "warning",
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--host",
    "127.0.0.1",
]


#: The PostgreSQL server the benchmarks create (and drop) their own databases on.
PG_ADMIN_DSN = os.environ.get("AGL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: The platform's command line, run as a child process.
CLI = [sys.executable, "-m", "agentlightning.cli"]


async def pg_admin(sql: str) -> None:
    """Run one administrative statement (``CREATE``/``DROP DATABASE``) on :data:`PG_ADMIN_DSN`."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def start_worker(
    env: dict[str, str], log: Path, *, ready_timeout: float, max_in_flight: int = 16
) -> subprocess.Popen[bytes]:
    """One ``agentlightning worker`` process (4..``max_in_flight`` tasks in flight), waited on (up
    to ``ready_timeout`` seconds) until it logs that it is ready."""
    handle = log.open("wb")
    cmd = [*CLI, "worker", "--min", "4", "--max", str(max_in_flight)]
    proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + ready_timeout
    while "ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker failed to start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return proc


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_wrk() -> str:
    """The wrk binary (``make bench`` installs it)."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is required: apt-get install -y wrk (make bench does this)")
    return path


@dataclass
class LoadResult:
    """Throughput and latency percentiles of one wrk run."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    script: Path | None = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Drive ``url`` with wrk and parse requests/s, p50, p99 and non-2xx/socket errors."""
    args = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return LoadResult(rps, p50, p99, errors)


class ChildServer:
    """A server process started from a command line, waited on until ``health_url`` answers 200."""

    def __init__(
        self, args: list[str], health_url: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.args = args
        self.health_url = health_url
        self.env = {**os.environ, **(env or {})}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ChildServer:
        out = self.log.open("wb") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.process.returncode}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.args} did not become healthy")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """``GET path`` straight through an ASGI app in this process (no server, no socket); the body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers if headers is not None else [(b"host", b"bench")],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
    }
    body = bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return bytes(body)
