"""Liveness checks for pooled connections that have been idle, instead of on every checkout.

SQLAlchemy's ``pool_pre_ping`` pings on *every* checkout: one extra round trip per session, which
on a busy task queue is a large share of the database traffic (a session per claim, per
completion, per API request).  A connection that was checked in moments ago is almost certainly
still alive, so this module pings only connections idle for longer than ``idle_seconds``, which
still catches the ones a PostgreSQL restart has broken: a restart takes longer than that, so
every connection that predates it has been idle at least that long.  This is SQLAlchemy's
documented "pessimistic disconnect handling" recipe: a ``checkout`` listener that raises
:class:`~sqlalchemy.exc.DisconnectionError` makes the pool discard the connection and retry with a
fresh one.  Pair it with ``pool_use_lifo=True`` so that busy pools keep reusing hot connections.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

_LAST_USED = "agl_last_checkin"

#: Connections unused for longer than this are pinged before they are handed out.
DEFAULT_IDLE_PING_SECONDS = 1.0


def install_idle_ping(engine: Engine, idle_seconds: float = DEFAULT_IDLE_PING_SECONDS) -> None:
    """Ping a pooled connection on checkout only when it sat idle for more than ``idle_seconds``."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is None or time.monotonic() - last <= idle_seconds:
            return  # brand-new, or used moments ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection failed its liveness check: {error}") from error
        if alive is False:
            raise exc.DisconnectionError("pooled connection failed its liveness check")
