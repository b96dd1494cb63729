"""Errors of the OpenAI-compatible routes (``/v1/...``) in OpenAI's format, decided in one place.

Every exception handler of the app and the gateway middleware's own answers (413, 500) ask
:func:`is_openai_path`; under ``/v1/`` they answer ``{"error": {"message", "type", "param",
"code"}}`` (what OpenAI clients parse) with the same status and headers, instead of the platform's
envelope. A 422 (invalid fields) is a 400 there, as OpenAI answers invalid requests.
"""

from __future__ import annotations

from starlette.responses import Response

from agentlightning.api.envelope import dumps
from agentlightning.errors import AppError
from agentlightning.gateway.service import OPENAI_CODES, openai_error_object

PREFIX = "/v1/"

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def is_openai_path(path: str) -> bool:
    """True for the gateway's OpenAI-compatible routes."""
    return path.startswith(PREFIX)


def openai_error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An OpenAI error body with ``status``."""
    status = 400 if status == 422 else status
    body = {
        "error": {
            "message": message,
            "type": error_type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


def openai_app_error(exc: AppError, status: int, headers: dict[str, str] | None) -> Response:
    """A platform error (auth, validation, limits, upstream) in OpenAI's format."""
    error = openai_error_object(exc)
    return openai_error_response(
        status, error["message"], code=error["code"], param=error["param"], error_type=error["type"], headers=headers
    )


def openai_platform_code(code: str) -> str:
    """OpenAI's code for one of the platform's error codes (lower case otherwise)."""
    return OPENAI_CODES.get(code, code.lower())
