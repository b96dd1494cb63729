"""FastAPI dependencies: the context, a database session, and each route's permission check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.auth.service import Principal, authenticate_token
from agentlightning.core.context import AppContext
from agentlightning.core.system_config import get_config
from agentlightning.errors import Forbidden, ServiceUnavailable, Unauthorized

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def context_of(request: Request) -> AppContext:
    """The process context the app was started with."""
    return request.app.state.ctx


async def get_ctx(request: Request) -> AppContext:
    """Dependency form of :func:`context_of` (async, so FastAPI does not hop to a thread)."""
    return request.app.state.ctx


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for the request (rolled back if the handler raises)."""
    async with context_of(request).db.session() as session:
        yield session


Ctx = Annotated[AppContext, Depends(get_ctx)]
DbSession = Annotated[AsyncSession, Depends(get_session)]


def bearer_credential(request: Request) -> str | None:
    """The token from ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key else None


def client_ip(request: Request) -> str:
    """The client's address (the direct peer; put a trusted proxy's header rewriting in front)."""
    return request.client.host if request.client else "unknown"


Access = Literal["public", "authenticated", "permission"]


class PermissionCheck:
    """The permission a route requires; every route declares exactly one of these."""

    def __init__(self, access: Access, permission: str | None = None) -> None:
        self.access = access
        self.permission = permission

    def __repr__(self) -> str:
        return f"PermissionCheck({self.access!r}, {self.permission!r})"

    async def __call__(self, request: Request) -> Principal | None:
        ctx = context_of(request)
        limiter = request.app.state.rate_limiter
        if self.access == "public":
            await limiter.check("anonymous", client_ip(request))
            return None
        credential = bearer_credential(request)
        if credential is None:
            await limiter.check("anonymous", client_ip(request))
            raise Unauthorized("AUTHENTICATION_REQUIRED", "Authentication required: send a Bearer token or X-API-Key")
        principal = await authenticate_token(ctx, credential)
        request.state.principal = principal
        await limiter.check("user", str(principal.user_id))
        if self.permission is not None and not principal.can(self.permission):
            raise Forbidden(
                "FORBIDDEN",
                f"Role '{principal.role}' lacks permission '{self.permission}'",
                details={"required_permission": self.permission, "role": principal.role},
            )
        if request.method not in READ_METHODS and principal.role != "admin":
            config = await get_config(ctx)
            if config.maintenance_mode:
                raise ServiceUnavailable("MAINTENANCE_MODE", "The platform is in maintenance mode; writes are paused")
        return principal


def require(permission: str) -> PermissionCheck:
    """A dependency admitting callers whose role grants ``permission`` (e.g. ``agent:read``)."""
    return PermissionCheck("permission", permission)


#: Anyone may call (rate-limited per IP).
public = PermissionCheck("public")
#: Any logged-in user may call (their own profile, logout, API keys).
authenticated = PermissionCheck("authenticated")
