"""``/auth``: login, token refresh, profile, logout, and API keys for machine clients."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from agentlightning.api.deps import Ctx, authenticated, client_ip, public
from agentlightning.api.envelope import ok
from agentlightning.api.params import IdPath
from agentlightning.auth import service
from agentlightning.auth.service import Principal
from agentlightning.validation import Text

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    """Username and password."""

    model_config = ConfigDict(extra="forbid")
    username: Text = Field(min_length=1, max_length=255)
    password: Text = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    """A refresh token to exchange for a new pair."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: Text = Field(min_length=16, max_length=512)


class LogoutRequest(BaseModel):
    """Optionally the session's refresh token, so the whole session ends."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: Text | None = Field(default=None, max_length=512)


class ApiKeyRequest(BaseModel):
    """A name for the key and an optional lifetime."""

    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=255)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def _pair(pair: service.TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
    }


@router.post("/login")
async def login(body: LoginRequest, request: Request, ctx: Ctx, _: None = Depends(public)) -> dict[str, Any]:
    """Exchange a username and password for an access token and a refresh token."""
    await request.app.state.rate_limiter.check("login", client_ip(request))
    pair = await service.login(ctx, body.username, body.password)
    return ok(_pair(pair), "Login successful")


@router.post("/refresh")
async def refresh(body: RefreshRequest, request: Request, ctx: Ctx, _: None = Depends(public)) -> dict[str, Any]:
    """Rotate a refresh token into a new pair; a reused refresh token ends its session."""
    await request.app.state.rate_limiter.check("login", client_ip(request))
    pair = await service.refresh(ctx, body.refresh_token)
    return ok(_pair(pair), "Token refreshed")


@router.get("/profile")
async def profile(ctx: Ctx, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    """The caller's user record and permissions."""
    profile = await service.get_profile(ctx, principal.user_id)
    return ok({**profile, "permissions": principal.permissions, "auth_method": principal.auth_method})


@router.post("/logout")
async def logout(
    ctx: Ctx, body: LogoutRequest | None = None, principal: Principal = Depends(authenticated)
) -> dict[str, Any]:
    """Revoke the access token used for this call and, if given, the refresh token's session."""
    await service.logout(ctx, principal, body.refresh_token if body else None)
    return ok(None, "Logged out")


@router.post("/api-keys", status_code=201)
async def create_api_key(
    body: ApiKeyRequest, ctx: Ctx, principal: Principal = Depends(authenticated)
) -> dict[str, Any]:
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


@router.get("/api-keys")
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


@router.delete("/api-keys/{key_id}")
async def revoke_api_key(key_id: IdPath, ctx: Ctx, principal: Principal = Depends(authenticated)) -> dict[str, Any]:
    """Revoke one of the caller's API keys."""
    await service.revoke_api_key(ctx, principal.user_id, key_id)
    return ok(None, "API key revoked")
