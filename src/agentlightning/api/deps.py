"""FastAPI dependencies: the context, a database session, and each route's permission check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.api.ratelimit import check_anonymous
from agentlightning.api.ratelimit import client_ip as client_ip  # routes import it from here
from agentlightning.auth.service import Principal, authenticate_token
from agentlightning.core.context import AppContext
from agentlightning.core.system_config import get_config
from agentlightning.errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized

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
        if self.access == "public":
            await check_anonymous(request)
            return None
        credential = bearer_credential(request)
        if credential is None:
            await check_anonymous(request)
            raise Unauthorized("AUTHENTICATION_REQUIRED", "Authentication required: send a Bearer token or X-API-Key")
        # Signature (cached), revocation, the user's state and their quota: one Redis round trip.
        principal = await authenticate_token(ctx, credential, rate_limit=True)
        request.state.principal = principal
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


class ExposureCheck(PermissionCheck):
    """For operational endpoints (``/metrics``, the API docs): who may read them is a setting
    (``AGL_METRICS_ACCESS`` / ``AGL_DOCS_ACCESS``): ``public``, ``admin`` or ``off`` (404)."""

    def __init__(self, what: Literal["metrics", "docs"]) -> None:
        super().__init__("public")
        self.what = what

    def __repr__(self) -> str:
        return f"ExposureCheck({self.what!r})"

    async def __call__(self, request: Request) -> Principal | None:
        settings = context_of(request).settings
        access = settings.metrics_access if self.what == "metrics" else settings.docs_access
        if access == "public":
            await check_anonymous(request)
            return None
        if access == "off":
            raise NotFound("NOT_FOUND", "No such resource")
        principal = await PermissionCheck("authenticated")(request)
        assert principal is not None
        if principal.role != "admin":
            raise Forbidden(
                "FORBIDDEN", f"Only admins may read {request.url.path} here", details={"role": principal.role}
            )
        return principal


def exposed(what: Literal["metrics", "docs"]) -> ExposureCheck:
    """The permission of ``/metrics`` or the docs pages: decided by settings at request time."""
    return ExposureCheck(what)


def require(permission: str) -> PermissionCheck:
    """A dependency admitting callers whose role grants ``permission`` (e.g. ``agent:read``)."""
    return PermissionCheck("permission", permission)


#: Anyone may call (rate-limited per IP).
public = PermissionCheck("public")
#: Any logged-in user may call (their own profile, logout, API keys).
authenticated = PermissionCheck("authenticated")
