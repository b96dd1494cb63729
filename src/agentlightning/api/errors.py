"""Where the platform's errors become HTTP: one status code per error class, and the headers.

Domain code raises :mod:`agentlightning.errors`; only this module knows what they mean on the wire.
"""

from __future__ import annotations

from agentlightning.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UpstreamFailed,
    ValidationFailed,
)

#: Most specific class first; a subclass of one of these inherits its status.
_STATUS_BY_CLASS: tuple[tuple[type[AppError], int], ...] = (
    (BadRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (ValidationFailed, 422),
    (RateLimited, 429),
    (OperationFailed, 500),
    (ServiceUnavailable, 503),
)


def status_for(exc: AppError) -> int:
    """The HTTP status an error answers with (400 for a bare :class:`AppError`)."""
    if isinstance(exc, UpstreamFailed):  # the upstream's own status, passed on
        return exc.upstream_status if 400 <= exc.upstream_status <= 599 else 502
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 400


def headers_for(exc: AppError) -> dict[str, str]:
    """Response headers an error implies (``Retry-After`` when the error knows when to retry)."""
    if exc.retry_after is not None:
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, ServiceUnavailable):
        return {"Retry-After": "1"}
    return {}
