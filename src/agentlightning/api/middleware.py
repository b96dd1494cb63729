"""The gateway middleware: request ids, security headers, metrics and the last-resort 500."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlightning.api.envelope import error_body
from agentlightning.observability import metrics

log = logging.getLogger(__name__)

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

#: The spec's "Security Headers".
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "1; mode=block",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": "default-src 'self'",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
#: The interactive docs load their script and styles from a CDN; only those pages get a wider policy.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


def new_request_id() -> str:
    """A fresh request id in the spec's ``req_...`` style."""
    return f"req_{uuid.uuid4().hex[:20]}"


def _request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if _CLIENT_REQUEST_ID.match(candidate):
                return candidate
            break
    return new_request_id()


class GatewayMiddleware:
    """Wraps every HTTP request: id, headers, timing, and an envelope for unhandled errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._static_headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                REQUEST_ID.set(_request_id_from(scope))
            await self.app(scope, receive, send)
            return
        request_id = _request_id_from(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = False
        path = scope.get("path", "")

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in self._static_headers:
                    if key not in present:
                        if key == b"content-security-policy" and path in DOCS_PATHS:
                            value = DOCS_CSP.encode()
                        headers.append((key, value))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error serving %s %s (request %s)", scope.get("method"), path, request_id)
            if not response_started:
                await self._send_500(send_wrapper)
            status_code = 500
        finally:
            endpoint = _endpoint_label(scope)
            method = scope.get("method", "")
            metrics.HTTP_REQUESTS.labels(method=method, endpoint=endpoint, status_code=str(status_code)).inc()
            metrics.HTTP_REQUEST_DURATION.labels(method=method, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
            REQUEST_ID.reset(token)

    @staticmethod
    async def _send_500(send: Any) -> None:
        import json

        body = json.dumps(error_body("INTERNAL_ERROR", "An internal error occurred; it has been logged")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _endpoint_label(scope: Scope) -> str:
    """The matched route's template (``/api/v2/agents/{id}``), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template:
        return str(template)
    return "unmatched"
