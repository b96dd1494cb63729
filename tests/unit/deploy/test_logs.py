"""Structured logs: JSON lines with request id, user and route in production, console lines elsewhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from agentlightning.api.middleware import REQUEST_ID
from agentlightning.observability.logs import JSON_FIELDS, build_handler, configure_logging
from agentlightning.observability.request_context import (
    CURRENT_SCOPE,
    RequestContextMiddleware,
    current_request_id,
    current_route,
    current_user,
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and uvicorn's loggers back as they were."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.access", "uvicorn.error")
    }
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


def _logger(handler: logging.Handler, name: str = "agentlightning.test") -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def _request_scope() -> dict[str, object]:
    return {
        "type": "http",
        "route": SimpleNamespace(path="/api/v2/agents/{agent_ref}"),
        "state": {"principal": SimpleNamespace(username="alice")},
    }


def test_json_line_carries_request_id_user_and_route() -> None:
    stream = io.StringIO()
    logger = _logger(build_handler("json", stream))
    scope_token = CURRENT_SCOPE.set(_request_scope())
    id_token = REQUEST_ID.set("req_abc123")
    try:
        logger.info("agent %s loaded", "a1", extra={"agent_id": "a1"})
    finally:
        REQUEST_ID.reset(id_token)
        CURRENT_SCOPE.reset(scope_token)
    line = json.loads(stream.getvalue())
    assert set(JSON_FIELDS) <= set(line)
    assert line["message"] == "agent a1 loaded" and line["level"] == "INFO" and line["logger"] == "agentlightning.test"
    assert line["request_id"] == "req_abc123" and line["user"] == "alice"
    assert line["route"] == "/api/v2/agents/{agent_ref}" and line["agent_id"] == "a1"
    assert line["timestamp"][:2] == "20" and "T" in line["timestamp"]


def test_json_outside_a_request_has_null_context_and_one_line_per_record_with_tracebacks() -> None:
    stream = io.StringIO()
    logger = _logger(build_handler("json", stream))
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["request_id"] is None and line["user"] is None and line["route"] is None
    assert "ValueError: boom" in line["exc_info"] and line["level"] == "ERROR"


def test_hostile_message_cannot_forge_fields_or_lines() -> None:
    stream = io.StringIO()
    logger = _logger(build_handler("json", stream))
    logger.warning("login failed for %s", 'x"}\n{"level": "INFO", "user": "admin')
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "WARNING" and line["user"] is None


def test_console_format_is_readable_with_placeholders() -> None:
    stream = io.StringIO()
    logger = _logger(build_handler("console", stream))
    logger.info("hello")
    text = stream.getvalue()
    assert "INFO" in text and "agentlightning.test" in text and "[- - -] hello" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_picks_json_in_production_only(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    assert configure_logging(env="production", stream=stream) == "json"
    logging.getLogger("agl_configure_probe").info("GET /x 200")
    assert json.loads(stream.getvalue().splitlines()[-1])["logger"] == "agl_configure_probe"
    access = logging.getLogger("uvicorn.access")
    assert access.propagate and not access.handlers and not access.disabled
    assert logging.getLogger("alembic").level == logging.WARNING
    assert configure_logging(env="development", stream=io.StringIO()) == "console"
    monkeypatch.setenv("AGL_ENV", "production")
    assert configure_logging(stream=io.StringIO()) == "json"
    monkeypatch.setenv("AGL_ENV", "test")
    assert configure_logging(stream=io.StringIO()) == "console"


async def test_middleware_binds_the_scope_for_the_request_only() -> None:
    seen: dict[str, object] = {}

    async def app(scope, receive, send) -> None:  # noqa: ANN001
        scope["route"] = SimpleNamespace(path="/api/v2/things/{id}")
        scope.setdefault("state", {})["principal"] = SimpleNamespace(username="bob")
        seen.update(route=current_route(), user=current_user())

    wrapped = RequestContextMiddleware(app)
    await wrapped({"type": "http", "path": "/api/v2/things/1"}, None, None)
    assert seen == {"route": "/api/v2/things/{id}", "user": "bob"}
    assert current_route() is None and current_user() is None and current_request_id() is None
