"""The client's configuration from the environment, and the flush at interpreter exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentlightning import AsyncClient, Client
from agentlightning.sdk.client import DEFAULT_URL


def test_the_environment_configures_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLIGHTNING_URL", "http://platform.internal:8000/")
    monkeypatch.setenv("AGENTLIGHTNING_API_KEY", "agl_from_env")
    client = Client()
    assert client.base_url == "http://platform.internal:8000"
    assert client.headers["X-API-Key"] == "agl_from_env"
    assert "Authorization" not in client.headers
    explicit = AsyncClient("http://other:9000", api_key="agl_explicit", token="jwt")
    assert explicit.base_url == "http://other:9000"
    assert explicit.headers["X-API-Key"] == "agl_explicit"
    assert explicit.headers["Authorization"] == "Bearer jwt"
    client.close(0.1)


def test_without_configuration_the_client_targets_a_local_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTLIGHTNING_URL", "AGENTLIGHTNING_API_KEY", "AGENTLIGHTNING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = Client()
    assert client.base_url == DEFAULT_URL and "X-API-Key" not in client.headers
    client.close(0.1)


def test_what_is_queued_is_sent_when_the_interpreter_exits() -> None:
    script = """
from agentlightning.sdk.recorder import Recorder
recorder = Recorder(lambda batch: print("SENT", [e["id"] for e in batch], flush=True), batch_interval=3600)
recorder.enqueue({"id": "last-words", "spans": [], "rewards": []})
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "SENT ['last-words']" in out.stdout, out.stdout + out.stderr


def test_a_forked_child_sends_its_own_updates_with_a_thread_of_its_own() -> None:
    script = """
import os
from agentlightning.sdk.recorder import Recorder
recorder = Recorder(lambda batch: print("SENT", os.getpid() == parent, [e["id"] for e in batch], flush=True),
                    batch_interval=0.0)
parent = os.getpid()
recorder.enqueue({"id": "parent", "spans": [], "rewards": []})
assert recorder.flush(30)
pid = os.fork()
if pid == 0:
    recorder.enqueue({"id": "child", "spans": [], "rewards": []})
    ok = recorder.flush(30)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("CHILD EXIT", os.waitstatus_to_exitcode(status), flush=True)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert "SENT True ['parent']" in lines and "SENT False ['child']" in lines, out.stdout + out.stderr
    assert "CHILD EXIT 0" in lines and len([line for line in lines if line.startswith("SENT")]) == 2
