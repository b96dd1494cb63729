"""The spec's response envelope, for successes and errors alike, and the fast JSON response."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from starlette.responses import JSONResponse

_JSON_SCALARS = (str, int, float, bool, type(None))


def utc_timestamp() -> str:
    """Now as ISO 8601 UTC with a ``Z`` suffix, as the spec's examples show."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def current_request_id() -> str | None:
    """The id of the request being served (set by the gateway middleware)."""
    from agentlightning.api.middleware import REQUEST_ID

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
    """A success envelope; ``top_level`` adds fields beside ``data`` (e.g. ``task_id``)."""
    body: dict[str, Any] = {"success": True, "data": to_jsonable(data), "message": message}
    if top_level:
        body.update(to_jsonable(top_level))
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
