"""Pure helpers of the experiment lifecycle: checkpoint selection and lease ownership."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from agentlightning.rl.experiments import _select_checkpoint, latest_resumable
from agentlightning.rl.manager import _owner_dead_here


def test_checkpoint_selection(tmp_path: Path) -> None:
    files = []
    for name in ("a.zip", "b.zip", "final.zip"):
        (tmp_path / name).write_bytes(b"x")
        files.append(str(tmp_path / name))
    entries = [
        {"timesteps": 500, "path": files[0], "final": False},
        {"timesteps": 1000, "path": files[1], "final": False},
        {"timesteps": 1000, "path": files[2], "final": True},
    ]
    assert _select_checkpoint(entries, "latest")["path"] == files[2]
    assert _select_checkpoint(entries, "final")["path"] == files[2]
    assert _select_checkpoint(entries, "500")["path"] == files[0]
    assert _select_checkpoint(entries, "7") is None and _select_checkpoint(entries, "nope") is None
    assert _select_checkpoint([], "latest") is None

    os.remove(files[2])
    assert latest_resumable(entries)["path"] == files[1], "a missing file is not resumable"
    assert latest_resumable([]) is None


def test_lease_owner_liveness() -> None:
    host = socket.gethostname()
    assert _owner_dead_here(None)
    assert _owner_dead_here(f"{host}/{os.getpid()}/abc"), "an earlier manager of this process"
    assert not _owner_dead_here(f"{host}/1/abc"), "pid 1 is alive"
    assert _owner_dead_here(f"{host}/999999999/abc")
    assert not _owner_dead_here("another-host/123/abc"), "other hosts wait for the lease to expire"
