"""The one error hierarchy: every failure the API reports carries a spec error code."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error with an UPPER_SNAKE code, an HTTP status and optional details for the envelope."""

    status_code: int = 400
    code: str = "BAD_REQUEST"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        *,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code or self.code)
        self.code = code or type(self).code
        self.message = message or self.code.replace("_", " ").capitalize()
        if status_code is not None:
            self.status_code = status_code
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(AppError):
    """The request is well-formed but cannot be carried out as asked."""

    status_code = 400
    code = "BAD_REQUEST"


class Unauthorized(AppError):
    """Missing, invalid, expired or revoked credentials."""

    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(AppError):
    """The caller is known but lacks the permission."""

    status_code = 403
    code = "FORBIDDEN"


class NotFound(AppError):
    """The named resource does not exist."""

    status_code = 404
    code = "NOT_FOUND"


class Conflict(AppError):
    """The request conflicts with the current state (a duplicate name, a finished task, ...)."""

    status_code = 409
    code = "CONFLICT"


class ValidationFailed(AppError):
    """The input is invalid; ``details`` says which fields and why."""

    status_code = 422
    code = "VALIDATION_ERROR"


class RateLimited(AppError):
    """Too many requests for this caller."""

    status_code = 429
    code = "RATE_LIMITED"


class ServiceUnavailable(AppError):
    """A dependency the request needs is down."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"
