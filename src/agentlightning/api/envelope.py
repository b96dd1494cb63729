"""The spec's response envelope, for successes and errors alike."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi.encoders import jsonable_encoder


def utc_timestamp() -> str:
    """Now as ISO 8601 UTC with a ``Z`` suffix, as the spec's examples show."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def current_request_id() -> str | None:
    """The id of the request being served (set by the gateway middleware)."""
    from agentlightning.api.middleware import REQUEST_ID

    return REQUEST_ID.get()


def ok(data: Any = None, message: str = "Operation completed successfully", **top_level: Any) -> dict[str, Any]:
    """A success envelope; ``top_level`` adds fields beside ``data`` (e.g. ``task_id``)."""
    body: dict[str, Any] = {"success": True, "data": jsonable_encoder(data), "message": message}
    body.update(jsonable_encoder(top_level))
    body["timestamp"] = utc_timestamp()
    body["request_id"] = current_request_id()
    return body


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error envelope."""
    return {
        "success": False,
        "error": {"code": code, "message": message, "details": jsonable_encoder(details or {})},
        "timestamp": utc_timestamp(),
        "request_id": current_request_id(),
    }
