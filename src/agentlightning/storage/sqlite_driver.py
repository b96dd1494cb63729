"""The DB-API module under the async SQLite engine: one that can load extensions (sqlite-vec).

Debian's (and many distributions') Python ``sqlite3`` is built without loadable-extension support,
so sqlite-vec cannot be loaded through it. ``pysqlite3`` (the ``pysqlite3-binary`` wheel on Linux)
is the same DB-API module compiled against a bundled, extension-capable SQLite. SQLAlchemy's
aiosqlite dialect takes its DB-API as an object (``create_engine(module=...)``): we give it
aiosqlite's connection wrapper over ``pysqlite3`` and ``pysqlite3``'s exception classes, so errors
are still translated into SQLAlchemy's (``IntegrityError`` stays ``IntegrityError``).

When the stdlib module can load extensions, or ``pysqlite3`` is not installed, nothing changes.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from types import ModuleType, SimpleNamespace
from typing import Any

import aiosqlite

_EXPORTED = (
    "DatabaseError",
    "Error",
    "IntegrityError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "sqlite_version",
    "sqlite_version_info",
)


def can_load_extensions(module: ModuleType) -> bool:
    """True when ``module``'s connections can load SQLite extensions."""
    return hasattr(module.Connection, "enable_load_extension")


def extension_module() -> ModuleType | None:
    """A DB-API sqlite module that can load extensions: the stdlib one, else ``pysqlite3``, else None."""
    if can_load_extensions(sqlite3):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        return None
    return dbapi2 if can_load_extensions(dbapi2) else None


def _aiosqlite_over(module: ModuleType) -> SimpleNamespace:
    """aiosqlite's API (``connect``, ``Connection``, exceptions) with ``module`` underneath."""

    def connect(database: Any, *, iter_chunk_size: int = 64, **kwargs: Any) -> aiosqlite.Connection:
        return aiosqlite.Connection(partial(module.connect, str(database), **kwargs), iter_chunk_size)

    names = {name: getattr(module, name) for name in _EXPORTED}
    return SimpleNamespace(connect=connect, Connection=aiosqlite.Connection, __version__=aiosqlite.__version__, **names)


def async_dbapi(module: ModuleType) -> Any:
    """The object to pass as ``create_async_engine(..., module=...)`` for an aiosqlite engine on ``module``."""
    from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

    if module is sqlite3:
        return AsyncAdapt_aiosqlite_dbapi(aiosqlite, sqlite3)
    return AsyncAdapt_aiosqlite_dbapi(_aiosqlite_over(module), module)  # type: ignore[arg-type]
