"""Who and what the current request is, for log records: request id, user and route template.

Neutral ground between the API layer and logging (no web framework imported here):

- the request id is the gateway middleware's ``REQUEST_ID`` contextvar, read through
  :func:`current_request_id` without importing the API layer (``sys.modules`` lookup);
- the user and route come from the ASGI scope of the current request, bound by
  :class:`RequestContextMiddleware` (a plain ASGI wrapper) around the whole application. Starlette
  fills that same scope dict as the request proceeds (``scope["route"]`` after routing,
  ``scope["state"]["principal"]`` once authenticated), so a log line emitted at any point of the
  request sees what is known at that point.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

#: The ASGI scope of the request being served by this task (``None`` outside a request).
CURRENT_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("agl_current_scope", default=None)

_MIDDLEWARE_MODULE = "agentlightning.api.middleware"


def current_request_id() -> str | None:
    """The gateway's request id of the current request, or ``None`` outside one."""
    module = sys.modules.get(_MIDDLEWARE_MODULE)
    var = getattr(module, "REQUEST_ID", None) if module is not None else None
    if var is None:
        return None
    value = var.get()
    return str(value) if value else None


def current_route() -> str | None:
    """The matched route template (``/api/v2/agents/{agent_id}``) of the current request, if routed."""
    scope = CURRENT_SCOPE.get()
    if scope is None:
        return None
    template = getattr(scope.get("route"), "path", None)
    return str(template) if template else None


def current_user() -> str | None:
    """The authenticated username of the current request, or ``None`` (anonymous / not yet known)."""
    scope = CURRENT_SCOPE.get()
    if scope is None:
        return None
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    username = getattr(principal, "username", None)
    return str(username) if username else None


class RequestContextMiddleware:
    """Outermost ASGI wrapper: makes the current request's scope visible to log records."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        # ``app.state`` and friends stay reachable through the wrapper.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = CURRENT_SCOPE.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_SCOPE.reset(token)
