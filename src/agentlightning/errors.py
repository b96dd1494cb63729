"""The one error hierarchy of the platform, free of HTTP.

Domain code (services, the queue, the RL manager, tools) raises these; it never knows which
status code or header a failure becomes. The API layer maps each class to its response in one
place (``agentlightning.api.errors``), the CLI prints ``code: message``.

Every error carries an UPPER_SNAKE ``code`` (the spec's ``AGENT_NOT_FOUND`` style), a human
``message`` and ``details`` a client can act on.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure a caller can understand: a code, a message and optional details."""

    code: str = "BAD_REQUEST"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        *,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message or code or self.code)
        self.code = code or type(self).code
        self.message = message or self.code.replace("_", " ").capitalize()
        self.details = details or {}
        #: Seconds after which retrying may succeed (rate limits, outages); ``None`` when unknown.
        self.retry_after = retry_after


class BadRequest(AppError):
    """The request is well-formed but cannot be carried out as asked."""

    code = "BAD_REQUEST"


class Unauthorized(AppError):
    """Missing, invalid, expired or revoked credentials."""

    code = "UNAUTHORIZED"


class Forbidden(AppError):
    """The caller is known but lacks the permission."""

    code = "FORBIDDEN"


class NotFound(AppError):
    """The named resource does not exist (or the caller may not know that it does)."""

    code = "NOT_FOUND"


class Conflict(AppError):
    """The request conflicts with the current state (a duplicate name, a finished task, ...)."""

    code = "CONFLICT"


class ValidationFailed(AppError):
    """The input is invalid; ``details`` says which fields and why."""

    code = "VALIDATION_ERROR"


class PayloadTooLarge(AppError):
    """The request body (or a part of it) is larger than the platform accepts."""

    code = "PAYLOAD_TOO_LARGE"


class RateLimited(AppError):
    """Too many requests for this caller; ``retry_after`` says when to come back."""

    code = "RATE_LIMITED"


class ServiceUnavailable(AppError):
    """A dependency the request needs is down, or the platform paused the operation."""

    code = "SERVICE_UNAVAILABLE"


class OperationFailed(AppError):
    """The platform accepted the request but could not complete it (an evaluation crashed, ...)."""

    code = "OPERATION_FAILED"


class UpstreamFailed(AppError):
    """An upstream (an LLM server the platform forwards to) answered with an error or not at all.

    ``upstream_status`` is the status to pass on: the upstream's own, 502 when it could not be
    reached, 504 when it did not answer in time. ``payload`` is the upstream's error object when
    it sent one (OpenAI's ``{"message", "type", "param", "code"}``); ``retry_after`` the seconds
    its ``Retry-After`` asked for, passed on to the caller.
    """

    code = "UPSTREAM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int = 502,
        payload: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__("UPSTREAM_ERROR", message, details=details, retry_after=retry_after)
        self.upstream_status = upstream_status
        self.payload = payload or {}
