"""The gateway: one pure-ASGI pass for request ids, the body limit, security headers, metrics and
the last-resort 500, plus the log filter that keeps credentials out of every log line.

One middleware instead of a stack of ``BaseHTTPMiddleware`` layers: no extra task or body copy
per request, the header list is built once, and metric children are looked up once per label set.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlightning.api.envelope import REQUEST_ID as REQUEST_ID  # defined beside the envelope that reads it
from agentlightning.api.envelope import dumps, error_body
from agentlightning.api.openai_errors import is_openai_path
from agentlightning.observability import metrics

log = logging.getLogger(__name__)

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
#: The interactive docs pages start Swagger UI / ReDoc with an inline script (their assets are ours,
#: served from /static/docs); only those pages get this wider policy, and nothing from elsewhere.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_STATIC = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_STATIC_NAMES = frozenset(k for k, _ in _STATIC)
_DOCS_STATIC = [(k, DOCS_CSP.encode() if k == b"content-security-policy" else v) for k, v in _STATIC]


def new_request_id() -> str:
    """A fresh request id in the spec's ``req_...`` style (80 random bits)."""
    return "req_" + os.urandom(10).hex()


def _request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if _CLIENT_REQUEST_ID.match(candidate):
                return candidate
            break
    return new_request_id()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body (chunked or not) grows past the limit: a 413 envelope.

    An ``HTTPException`` so FastAPI's body parsing lets it through to the exception handlers.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"The request body exceeds {limit} bytes")


class GatewayMiddleware:
    """Wraps every HTTP request: id, body limit, headers, timing, and an envelope for unhandled errors."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 10 * 1024 * 1024) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._metric_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                REQUEST_ID.set(_request_id_from(scope))
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id: str | None = None
        content_length = -1
        for name, value in scope["headers"]:
            if name == b"x-request-id" and request_id is None:
                candidate = value.decode("latin-1").strip()
                request_id = candidate if _CLIENT_REQUEST_ID.match(candidate) else None
                if request_id is None:
                    request_id = new_request_id()
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
        if request_id is None:
            request_id = new_request_id()
        token = REQUEST_ID.set(request_id)
        state = [500, False]  # status code, response started
        path = scope["path"]
        extra = _DOCS_STATIC if path in DOCS_PATHS else _STATIC
        rid_header = (b"x-request-id", request_id.encode())
        limit = self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state[0] = message["status"]
                state[1] = True
                headers = list(message.get("headers", ()))
                if any(k in _STATIC_NAMES for k, _ in headers):
                    present = {k.lower() for k, _ in headers}
                    headers.extend(h for h in extra if h[0] not in present)
                else:
                    headers.extend(extra)
                headers.append(rid_header)
                message["headers"] = headers
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            if content_length > limit:
                await _send_envelope(
                    send_wrapper, 413, "PAYLOAD_TOO_LARGE", str(BodyTooLarge(limit).detail), openai=is_openai_path(path)
                )
            else:
                await self.app(scope, receive_limited, send_wrapper)
        except Exception:
            log.exception("unhandled error serving %s %s (request %s)", scope.get("method"), path, request_id)
            if not state[1]:
                await _send_envelope(
                    send_wrapper,
                    500,
                    "INTERNAL_ERROR",
                    "An internal error occurred; it has been logged",
                    openai=is_openai_path(path),
                )
            state[0] = 500
        finally:
            key = (scope["method"], _endpoint_label(scope), state[0])
            children = self._metric_children.get(key)
            if children is None:
                children = (
                    metrics.HTTP_REQUESTS.labels(method=key[0], endpoint=key[1], status_code=str(key[2])),
                    metrics.HTTP_REQUEST_DURATION.labels(method=key[0], endpoint=key[1]),
                )
                self._metric_children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
            REQUEST_ID.reset(token)


async def _send_envelope(send: Send, status: int, code: str, message: str, *, openai: bool = False) -> None:
    """The error envelope (or, under ``/v1/``, OpenAI's error object: see ``api/openai_errors.py``)."""
    if openai:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = dumps({"error": {"message": message, "type": kind, "param": None, "code": code.lower()}})
    else:
        body = dumps(error_body(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
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


#: ``token=...``-style query parameters and ``Bearer ...`` values, wherever they appear in a log line.
_SECRET_QUERY = re.compile(
    r"((?:^|[?&;])(?:token|access_token|refresh_token|api_key|apikey|key|password)=)[^&\s\"']*", re.I
)
_BEARER = re.compile(r"(bearer[ ,]+)[A-Za-z0-9._~+/=-]{8,}", re.I)
_API_KEY = re.compile(r"agl_[A-Za-z0-9_-]{16,}")


def redact(text: str) -> str:
    """``text`` with credentials (query tokens, bearer tokens, API keys) replaced by ``[REDACTED]``."""
    if "=" in text:
        text = _SECRET_QUERY.sub(r"\1[REDACTED]", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1[REDACTED]", text)
    if "agl_" in text:
        text = _API_KEY.sub("[REDACTED]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites log records so no token reaches a log: uvicorn's access line prints the path with
    its query string (``/ws/agents?token=...``), its WebSocket lines too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


_LOGGERS_TO_REDACT = ("uvicorn.access", "uvicorn.error", "uvicorn", "agentlightning", "")


def install_log_redaction() -> None:
    """Attach :class:`RedactSecretsFilter` to uvicorn's loggers, ours and the root logger, and to
    their handlers (a handler's filter also sees records propagated from child loggers)."""
    for name in _LOGGERS_TO_REDACT:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactSecretsFilter) for f in target.filters):
                target.addFilter(RedactSecretsFilter())
