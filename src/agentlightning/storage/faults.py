"""Which exceptions mean "the database cannot be reached right now" (retry later), not a bug.

A PostgreSQL restart or failover shows up in many shapes, depending on the moment it hits:

- a refused or reset TCP connection (``ConnectionRefusedError`` / ``OSError`` while connecting),
- ``CannotConnectNowError`` ("the database system is starting up", SQLSTATE 57P03),
- ``AdminShutdownError`` / ``CrashShutdownError`` (57P01 / 57P02) on a live connection,
- ``ConnectionDoesNotExistError`` or "connection is closed" on a connection a restart broke,
- the pool timing out waiting for a connection (``sqlalchemy.exc.TimeoutError``),
- too many connections (53300) while clients reconnect all at once.

SQLAlchemy wraps some of these in :class:`~sqlalchemy.exc.DBAPIError` (sometimes a bare ``Error``
with ``connection_invalidated``), and lets others through as they are. :func:`is_unavailable`
walks the whole chain of causes, so every entry point (REST handlers, the WebSocket, services)
can answer "unavailable, retry" instead of a 500.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

__all__ = ["RETRY_AFTER_SECONDS", "UNAVAILABLE_TYPES", "is_bad_data", "is_refused_statement", "is_unavailable"]

#: How long a client is told to wait before retrying.
RETRY_AFTER_SECONDS = 1

# SQLSTATE classes meaning the server cannot serve now: 08 connection exception, 53 insufficient
# resources (too many connections), 57 operator intervention (shutdown, starting up, cancelled).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")

try:  # asyncpg is a server dependency; the SDK may run without it
    import asyncpg

    _ASYNCPG_TYPES: tuple[type[Exception], ...] = (
        asyncpg.PostgresConnectionError,
        asyncpg.InsufficientResourcesError,
        asyncpg.OperatorInterventionError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.InterfaceError,
    )
    _ASYNCPG_CLIENT_DATA_ERROR: tuple[type[BaseException], ...] = (asyncpg.exceptions._base.DataError,)
except ImportError:  # pragma: no cover - server installs always have it
    _ASYNCPG_TYPES = ()
    _ASYNCPG_CLIENT_DATA_ERROR = ()

#: Exception classes worth routing to the "unavailable" check (a handler per class).
UNAVAILABLE_TYPES: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    ConnectionError,
    socket.gaierror,
    *_ASYNCPG_TYPES,
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        for nxt in (getattr(item, "orig", None), item.__cause__, item.__context__):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


def _one(error: BaseException, under_database_error: bool) -> bool:
    if isinstance(error, sa_exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError))
    if isinstance(error, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True
    if isinstance(error, (ConnectionError, socket.gaierror)):
        return True
    if under_database_error and isinstance(error, (OSError, TimeoutError)):
        return True  # a connect timeout or network error raised while the driver talked to the server
    if _ASYNCPG_TYPES and isinstance(error, _ASYNCPG_TYPES):
        if isinstance(error, _ASYNCPG_CLIENT_DATA_ERROR):
            return False  # a parameter the driver could not encode: bad input, not an outage
        if isinstance(error, asyncpg.InterfaceError) and not isinstance(error, asyncpg.ConnectionDoesNotExistError):
            return "connection" in str(error).lower() and "closed" in str(error).lower()
        return True
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or anything in its chain of causes) means the database is unreachable."""
    if is_bad_data(error):
        return False
    chain = list(_chain(error))
    under = any(isinstance(e, (sa_exc.DBAPIError, *_ASYNCPG_TYPES)) for e in chain)
    return any(_one(e, under) for e in chain)


def is_bad_data(error: BaseException) -> bool:
    """True when the database (or its driver) refused a *value*: SQLSTATE class 22 (a NUL in text,
    a number out of range, ...) or a parameter the driver could not encode.

    Input validation should stop such values first (:mod:`agentlightning.validation`); this is
    the net under it, so a value a type missed is a 422 rather than a 500.
    """
    for item in _chain(error):
        if _ASYNCPG_CLIENT_DATA_ERROR and isinstance(item, _ASYNCPG_CLIENT_DATA_ERROR):
            return True
        sqlstate = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return True
    return False


def is_refused_statement(error: BaseException) -> bool:
    """True when PostgreSQL refused a statement and its connection is still sound (a constraint,
    a value it cannot store): not an outage, not an interrupted exchange."""
    return bool(_ASYNCPG_TYPES) and isinstance(error, asyncpg.PostgresError) and not is_unavailable(error)
