"""Benchmark-only shim: counts the SQL statements and transactions a process sends.

``benchmarks/task_throughput.py`` puts this folder first on the ``PYTHONPATH`` of the server and
worker processes it starts; Python imports ``sitecustomize`` at start-up, which registers
SQLAlchemy engine listeners and counts the queue's driver-level statements too.  On ``SIGUSR1``
the counts so far are written as JSON to ``$AGL_BENCH_STMT_DIR/<pid>.json``, so the benchmark can
difference them around its timed run.
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

    try:  # statements run on the driver connection, outside SQLAlchemy's events
        from agentlightning.storage.driver import DriverStatement
    except ImportError:  # an older checkout (``--src``) without it
        pass
    else:

        def _counted(run: Any) -> Any:
            async def counted(self: Any, conn: Any, params: Any) -> Any:
                _counts["statements"] += 1
                return await run(self, conn, params)

            return counted

        DriverStatement.fetch = _counted(DriverStatement.fetch)  # type: ignore[method-assign]
        DriverStatement.fetchrow = _counted(DriverStatement.fetchrow)  # type: ignore[method-assign]

        from asyncpg.transaction import Transaction

        _exit = Transaction.__aexit__

        async def _counted_exit(self: Any, exc_type: Any, *rest: Any) -> Any:
            _counts["commits" if exc_type is None else "rollbacks"] += 1
            return await _exit(self, exc_type, *rest)

        Transaction.__aexit__ = _counted_exit  # type: ignore[method-assign]

    def _dump(*_: Any) -> None:
        path = Path(_OUT) / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_counts))
        tmp.replace(path)

    signal.signal(signal.SIGUSR1, _dump)
