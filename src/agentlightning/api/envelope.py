"""The spec's response envelope, for successes and errors alike: the one way to build either.

A route declares ``Envelope[XPublic]`` as its response model and returns ``ok(data, message)``.
``ok`` only assembles a dict: FastAPI validates it against the route's model once and Pydantic
serialises it straight to JSON bytes, so nothing is encoded twice. Errors use ``error_response``
(``ErrorEnvelope`` documents it in ``/openapi.json``), rendered by orjson.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any, Generic, Literal, TypeVar

import orjson
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from agentlightning.validation import JSON_TOO_LARGE

T = TypeVar("T")
#: The id of the request being served; set by the gateway middleware (which re-exports it).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_JSON_SCALARS = (str, int, float, bool, type(None))


class Envelope(BaseModel, Generic[T]):
    """A successful response: ``data`` is the route's payload."""

    success: Literal[True] = True
    data: T
    message: str = Field(examples=["Operation completed successfully"])
    timestamp: str = Field(description="ISO 8601 UTC, e.g. 2025-01-27T10:30:00.000Z")
    request_id: str | None = Field(default=None, description="also in the X-Request-ID header")


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a readable message and details to act on."""

    code: str = Field(examples=["AGENT_NOT_FOUND"], description="UPPER_SNAKE code, stable across versions")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    """A failed response (every 4xx and 5xx)."""

    success: Literal[False] = False
    error: ErrorDetail
    timestamp: str
    request_id: str | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


#: The error responses every route documents (``responses=`` of each router); public routes drop
#: 401 and 403 (see :mod:`agentlightning.api.openapi`).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Bad request, e.g. malformed JSON (INVALID_JSON)"),
    401: _error("Missing, invalid, expired or revoked credentials"),
    403: _error("The caller's role lacks the route's permission"),
    404: _error("No such resource"),
    409: _error("Conflict with the current state"),
    422: _error("Invalid input (VALIDATION_ERROR); details.errors names each field"),
    429: _error("Rate limited; see Retry-After"),
    500: _error("Internal error (logged with the request id)"),
    503: _error("A dependency is unavailable or the platform is in maintenance; see Retry-After"),
}


#: The last whole second formatted (``YYYY-MM-DDTHH:MM:SS``): every response of that second reuses it.
_second_text: tuple[int, str] = (-1, "")


def utc_timestamp() -> str:
    """Now as ISO 8601 UTC with milliseconds and a ``Z`` suffix, as the spec's examples show.

    The same text as ``datetime.now(timezone.utc).isoformat(timespec="milliseconds")`` with
    ``Z`` for ``+00:00``; the date and time part is formatted once per second.
    """
    return format_utc(time.time())


def format_utc(now: float) -> str:
    """:func:`utc_timestamp` of the POSIX time ``now``."""
    global _second_text
    second = int(now)
    cached = _second_text
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _second_text = cached
    return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


def current_request_id() -> str | None:
    """The id of the request being served (set by the gateway middleware)."""
    return REQUEST_ID.get()


def to_jsonable(value: Any) -> Any:
    """``jsonable_encoder``'s result, walking plain JSON values directly (the common case) and
    handing only other values (datetimes, models, ...) to ``jsonable_encoder``."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if type(value) is dict:
        if all(type(k) is str for k in value):
            return {k: to_jsonable(v) for k, v in value.items()}
        return jsonable_encoder(value)
    if type(value) is list:
        return [to_jsonable(v) for v in value]
    return jsonable_encoder(value)


def ok(data: Any = None, message: str = "Operation completed successfully", **top_level: Any) -> dict[str, Any]:
    """A success envelope; ``top_level`` adds fields beside ``data`` (e.g. ``task_id``).

    ``data`` may hold models, rows' dicts and datetimes as they are: the route's response model
    validates and serialises them (no encoding here).
    """
    body: dict[str, Any] = {"success": True, "data": data, "message": message}
    body.update(top_level)
    body["timestamp"] = utc_timestamp()
    body["request_id"] = current_request_id()
    return body


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error envelope (the one place its shape is defined)."""
    return {
        "success": False,
        "error": {"code": code, "message": message, "details": to_jsonable(details or {})},
        "timestamp": utc_timestamp(),
        "request_id": current_request_id(),
    }


def _orjson_default(value: Any) -> Any:
    return jsonable_encoder(value)


def dumps(content: Any) -> bytes:
    """JSON bytes with orjson (values orjson cannot encode go through ``jsonable_encoder``)."""
    return orjson.dumps(content, default=_orjson_default, option=orjson.OPT_NON_STR_KEYS)


class FastJSONResponse(JSONResponse):
    """``JSONResponse`` rendered by orjson: the app's default response class and every error envelope.

    Routes with a response model keep FastAPI's own fast path (Pydantic serialises to bytes).
    """

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    status_code: int,
    headers: dict[str, str] | None = None,
) -> FastJSONResponse:
    """An error envelope as a response."""
    return FastJSONResponse(error_body(code, message, details), status_code=status_code, headers=headers)


def validation_error_body(errors: list[dict[str, Any]], body: Any = None) -> tuple[int, dict[str, Any]]:
    """The status and envelope of a request that failed validation.

    Malformed JSON is a 400 ``INVALID_JSON`` naming the line, column and character offset of the
    problem; anything else is a 422 ``VALIDATION_ERROR`` listing each invalid field.
    """
    for err in errors:
        if err.get("type") == "json_invalid":
            loc = err.get("loc", ())
            position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            text = (
                body if isinstance(body, str) else (body.decode("utf-8", "replace") if isinstance(body, bytes) else "")
            )
            line = text.count("\n", 0, position) + 1
            column = position - (text.rfind("\n", 0, position) + 1) + 1
            reason = (err.get("ctx") or {}).get("error") or err.get("msg", "invalid JSON")
            message = f"Malformed JSON at line {line}, column {column}: {reason}"
            return 400, error_body(
                "INVALID_JSON", message, {"line": line, "column": column, "position": position, "reason": reason}
            )
    fields = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())),
            "message": err.get("msg", "invalid"),
            "type": err.get("type", ""),
        }
        for err in errors
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in fields[:5])
    too_large = [e for e in fields if e["type"] == JSON_TOO_LARGE]
    if too_large:
        return 413, error_body("PAYLOAD_TOO_LARGE", f"Request too large: {summary}", {"errors": too_large})
    return 422, error_body("VALIDATION_ERROR", f"Invalid request: {summary}", {"errors": fields})
