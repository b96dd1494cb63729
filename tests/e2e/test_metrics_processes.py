"""Metrics with several processes: prometheus-client's multiprocess mode, as ``serve --processes``
runs it. Two processes write, one scrape sees both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import ServerProcess

WRITER = """
import os, sys
from agentlightning.observability import metrics as m
n = int(sys.argv[1])
m.HTTP_REQUESTS.labels(method="GET", endpoint="/probe", status_code="200").inc(n)
m.HTTP_REQUEST_DURATION.labels(method="GET", endpoint="/probe").observe(0.01 * n)
m.POSTGRES_CONNECTIONS_ACTIVE.set(n)            # livesum: added over processes
m.TASK_QUEUE_DEPTH.labels(priority="high").set(n)  # mostrecent: the last write wins
"""
READER = (
    "import sys; from agentlightning.observability.metrics import exposition; sys.stdout.write(exposition().decode())"
)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _python(code: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_writer_processes_one_scrape(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(WRITER, "3", env=env)
    _python(WRITER, "5", env=env)
    samples = _samples(_python(READER, env=env))
    probe = (("endpoint", "/probe"), ("method", "GET"), ("status_code", "200"))
    assert samples[("http_requests_total", probe)] == 8
    assert samples[("http_request_duration_seconds_count", (("endpoint", "/probe"), ("method", "GET")))] == 2
    assert samples[("postgres_connections_active", ())] == 8
    assert samples[("task_queue_depth", (("priority", "high"),))] == 5


def test_serve_with_two_processes_counts_every_request_in_every_scrape(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        "REDIS_URL": "",
        "AGL_ADMIN_PASSWORD": "admin-password-for-e2e-tests",
        "AGL_RUN_SERVICES": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # an earlier run's file is removed
    server = ServerProcess(env, tmp_path / "server.log", "--processes", "2")
    server.start()
    try:
        # No keep-alive: each request is a new connection, which either process may accept.
        with httpx.Client(base_url=server.url, limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as http:
            before = _health_count(http.get("/metrics").text)
            for _ in range(40):
                assert http.get("/api/v2/health").status_code == 200
            counts = {_health_count(http.get("/metrics").text) for _ in range(6)}
        assert counts == {before + 40}, (before, counts)
        pids = {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2, f"one process wrote every counter: {pids}"
        assert "999999" not in pids
    finally:
        server.stop()


def _health_count(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "http_requests_total" and s.labels.get("endpoint") == "/api/v2/health"
    )
