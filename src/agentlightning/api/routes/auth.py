"""``/auth``: login, token refresh, profile, logout, and API keys for machine clients."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from agentlightning.api.deps import Ctx, authenticated, client_ip, context_of, public
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import IdPath
from agentlightning.api.ratelimit import check_login
from agentlightning.auth import service
from agentlightning.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    LoginRequest,
    LogoutRequest,
    PasswordChangeRequest,
    RefreshRequest,
    TokenPairPublic,
    UserProfile,
)
from agentlightning.auth.service import Principal

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


def _pair(pair: service.TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
    }


@router.post("/login", response_model=Envelope[TokenPairPublic])
async def login(body: LoginRequest, request: Request, ctx: Ctx, _: None = Depends(public)) -> dict[str, Any]:
    """Exchange a username and password for an access token and a refresh token."""
    await check_login(request)
    pair = await service.login(ctx, body.username, body.password, client_ip(request))
    return ok(_pair(pair), "Login successful")


@router.post("/refresh", response_model=Envelope[TokenPairPublic])
async def refresh(body: RefreshRequest, request: Request, ctx: Ctx, _: None = Depends(public)) -> dict[str, Any]:
    """Rotate a refresh token into a new pair; a reused refresh token ends its session."""
    await check_login(request)
    pair = await service.refresh(ctx, body.refresh_token)
    return ok(_pair(pair), "Token refreshed")


@router.get("/profile", response_model=Envelope[UserProfile])
async def profile(request: Request, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    """The caller's user record and permissions."""
    # The context from the request, not a ``Ctx`` dependency: each dependency costs FastAPI a solve.
    profile = await service.get_profile(context_of(request), principal.user_id, principal.record)
    return ok({**profile, "permissions": principal.permissions, "auth_method": principal.auth_method})


@router.post("/logout", response_model=Envelope[None])
async def logout(
    ctx: Ctx, body: LogoutRequest | None = None, principal: Principal = Depends(authenticated)
) -> dict[str, Any]:
    """Revoke the access token used for this call and, if given, the refresh token's session."""
    await service.logout(ctx, principal, body.refresh_token if body else None)
    return ok(None, "Logged out")


@router.post("/password", response_model=Envelope[None])
async def change_password(
    body: PasswordChangeRequest, request: Request, ctx: Ctx, principal: Principal = Depends(authenticated)
) -> dict[str, Any]:
    """Change the caller's password; every access token and session of theirs ends at once."""
    await check_login(request)
    await service.change_password(ctx, principal, body.current_password, body.new_password)
    return ok(None, "Password changed; log in again")


@router.post("/api-keys", status_code=201, response_model=Envelope[ApiKeyCreated])
async def create_api_key(body: ApiKeyCreate, ctx: Ctx, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    """Create an API key for the caller; the key is shown only in this response."""
    record, key = await service.create_api_key(ctx, principal.user_id, body.name, body.expires_in_days)
    return ok(
        {
            "id": record.id,
            "name": record.name,
            "key": key,
            "prefix": record.key_prefix,
            "expires_at": record.expires_at,
        },
        "API key created; store it now, it will not be shown again",
    )


@router.get("/api-keys", response_model=Envelope[list[ApiKeyPublic]])
async def list_api_keys(ctx: Ctx, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    """The caller's API keys, without their secrets."""
    keys = await service.list_api_keys(ctx, principal.user_id)
    return ok(
        [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.key_prefix,
                "created_at": k.created_at,
                "expires_at": k.expires_at,
                "last_used_at": k.last_used_at,
                "revoked": k.revoked_at is not None,
            }
            for k in keys
        ]
    )


@router.delete("/api-keys/{key_id}", response_model=Envelope[None])
async def revoke_api_key(key_id: IdPath, ctx: Ctx, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    """Revoke one of the caller's API keys."""
    await service.revoke_api_key(ctx, principal.user_id, key_id)
    return ok(None, "API key revoked")
