"""``/api/v2/admin``: user administration without a shell, and the audit log (admins only).

Every change is written by the auth service (the one writer of ``users``) together with its
``audit_log`` entry; role changes, disabling and password resets end the user's tokens.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import IdPath, OptText, PageQuery, PageSizeQuery
from agentlightning.audit import service as audit
from agentlightning.audit.schemas import AuditPage
from agentlightning.audit.service import Actor
from agentlightning.auth import service
from agentlightning.auth.schemas import AdminUserCreate, AdminUserPage, AdminUserPublic, AdminUserUpdate, PasswordReset
from agentlightning.auth.service import Principal
from agentlightning.validation import DB_INT_MAX
from agentlightning.vocabulary import AuditAction, UserRole

router = APIRouter(prefix="/api/v2/admin", tags=["admin"], responses=ERROR_RESPONSES)


def _actor(principal: Principal) -> Actor:
    return Actor(name=principal.username, user_id=principal.user_id)


@router.get("/users", response_model=Envelope[AdminUserPage])
async def list_users(
    ctx: Ctx,
    _: Principal = Depends(require("user:read")),
    role: UserRole | None = Query(default=None),
    is_active: bool | None = Query(default=None, description="Only enabled (true) or disabled (false) users"),
    search: Annotated[OptText, Query(max_length=255, description="Username contains")] = None,
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """List users, filtered by role, state and name, a page at a time."""
    items, total = await service.list_users_page(
        ctx, role=role, is_active=is_active, search=search, page=page, page_size=page_size
    )
    return ok({"items": items, "total": total, "page": page, "page_size": page_size}, f"{total} user(s)")


@router.post("/users", status_code=201, response_model=Envelope[AdminUserPublic])
async def create_user(
    body: AdminUserCreate, ctx: Ctx, principal: Principal = Depends(require("user:write"))
) -> dict[str, Any]:
    """Create a user with a role (audited)."""
    user = await service.create_user(ctx, body.username, body.password, body.role, actor=_actor(principal))
    return ok(service.admin_view(user), f"User '{user.username}' created")


@router.get("/users/{user_id}", response_model=Envelope[AdminUserPublic])
async def get_user(user_id: IdPath, ctx: Ctx, _: Principal = Depends(require("user:read"))) -> dict[str, Any]:
    """One user."""
    return ok(service.admin_view(await service.get_user(ctx, user_id)))


@router.patch("/users/{user_id}", response_model=Envelope[AdminUserPublic])
async def update_user(
    user_id: IdPath, body: AdminUserUpdate, ctx: Ctx, principal: Principal = Depends(require("user:write"))
) -> dict[str, Any]:
    """Change a user's role and/or disable or enable them (audited; their tokens end).

    The last active admin can be neither demoted nor disabled (409 ``LAST_ADMIN``).
    """
    user = await service.update_user(ctx, _actor(principal), user_id, role=body.role, is_active=body.is_active)
    return ok(service.admin_view(user), f"User '{user.username}' updated")


@router.post("/users/{user_id}/password", response_model=Envelope[AdminUserPublic])
async def reset_password(
    user_id: IdPath, body: PasswordReset, ctx: Ctx, principal: Principal = Depends(require("user:write"))
) -> dict[str, Any]:
    """Set a user's password (audited); every token and session of theirs ends."""
    user = await service.reset_password(ctx, _actor(principal), user_id, body.password)
    return ok(service.admin_view(user), f"Password of '{user.username}' reset; their sessions ended")


@router.get("/audit", response_model=Envelope[AuditPage])
async def list_audit(
    ctx: Ctx,
    _: Principal = Depends(require("audit:read")),
    action: AuditAction | None = Query(default=None),
    actor: Annotated[OptText, Query(max_length=255, description="Username of who made the change")] = None,
    target_type: Annotated[OptText, Query(max_length=64, description="e.g. 'user'")] = None,
    target_id: int | None = Query(default=None, ge=1, le=DB_INT_MAX),
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """The audit log, newest first."""
    items, total = await audit.list_entries(
        ctx, action=action, actor=actor, target_type=target_type, target_id=target_id, page=page, page_size=page_size
    )
    return ok({"items": items, "total": total, "page": page, "page_size": page_size}, f"{total} entr(ies)")
