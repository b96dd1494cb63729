"""Process-wide logging: JSON lines in production, a readable console format elsewhere.

``configure_logging()`` is called once at start-up by the ``agentlightning`` command (``serve``,
``worker``, ...). Every record carries the current request's id, user and route template (see
:mod:`agentlightning.observability.request_context`); outside a request they are ``null``/``-``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from agentlightning.observability.request_context import current_request_id, current_route, current_user

#: Attributes added to every record by :class:`RequestContextFilter`.
CONTEXT_FIELDS = ("request_id", "user", "route")
#: Keys of every JSON log line (plus ``exc_info`` when an exception is logged, and any ``extra``).
JSON_FIELDS = ("timestamp", "level", "logger", "message", *CONTEXT_FIELDS)
CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s %(user)s %(route)s] %(message)s"
#: Noisy libraries held at WARNING.
QUIET_LOGGERS = ("alembic", "httpx", "httpx2", "httpcore", "asyncio")


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``user`` and ``route`` of the current request to each record."""

    def __init__(self, placeholder: str | None = None) -> None:
        super().__init__()
        self.placeholder = placeholder

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record (never drops it)."""
        for name, getter in (("request_id", current_request_id), ("user", current_user), ("route", current_route)):
            if getattr(record, name, None) is None:
                setattr(record, name, getter() or self.placeholder)
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line: timestamp (ISO 8601, UTC), level, logger, message, request context."""
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(user)s %(route)s",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        timestamp=False,
    )


def build_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler in ``fmt`` (``json`` or ``console``) with the request-context filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        handler.setFormatter(json_formatter())
        handler.addFilter(RequestContextFilter(placeholder=None))
    else:
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        handler.addFilter(RequestContextFilter(placeholder="-"))
    return handler


def _environment() -> str:
    """``AGL_ENV`` from the environment, else from ``.env`` through Settings (loaded only then)."""
    for key, value in os.environ.items():
        if key.upper() == "AGL_ENV":
            return value.strip().lower()
    if not os.path.exists(".env"):
        return "development"
    try:
        from agentlightning.settings import get_settings

        return get_settings().agl_env
    except Exception:  # invalid settings are reported by the command itself, in a readable line
        return "development"


def configure_logging(env: str | None = None, level: str | int | None = None, stream: IO[str] | None = None) -> str:
    """Install the root handler for this process; returns the format chosen (``json`` or ``console``).

    ``AGL_ENV=production`` gives JSON lines, any other environment the console format. Uvicorn's
    own loggers propagate here (``serve`` passes ``log_config=None`` so uvicorn keeps its hands off).
    """
    env = env or _environment()
    fmt = "json" if env == "production" else "console"
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(build_handler(fmt, stream))
    root.setLevel(level or logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.disabled = False
    return fmt
