"""Benchmark-only shim: counts the SQL statements and transactions a process sends.

``benchmarks/task_throughput.py`` puts this folder first on the ``PYTHONPATH`` of the server and
worker processes it starts; Python imports ``sitecustomize`` at start-up, which registers
SQLAlchemy engine listeners.  On ``SIGUSR1`` the counts so far are written as JSON to
``$AGL_BENCH_STMT_DIR/<pid>.json``, so the benchmark can difference them around its timed run.
Nothing here is imported by the application itself.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

_OUT = os.environ.get("AGL_BENCH_STMT_DIR")

if _OUT:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _counts = {"statements": 0, "commits": 0, "rollbacks": 0}

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(*_: Any) -> None:
        _counts["statements"] += 1

    @event.listens_for(Engine, "commit")
    def _commit(*_: Any) -> None:
        _counts["commits"] += 1

    @event.listens_for(Engine, "rollback")
    def _rollback(*_: Any) -> None:
        _counts["rollbacks"] += 1

    def _dump(*_: Any) -> None:
        path = Path(_OUT) / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_counts))
        tmp.replace(path)

    signal.signal(signal.SIGUSR1, _dump)
