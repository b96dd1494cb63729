"""JWT access tokens, opaque refresh tokens and API keys."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from agentlightning.auth.rbac import permissions_for
from agentlightning.errors import Unauthorized

ALGORITHM = "HS256"
API_KEY_PREFIX = "agl_"
#: Exactly the claims of the spec's "JWT Token Structure".
ACCESS_TOKEN_CLAIMS = ("user_id", "username", "role", "permissions", "exp", "iat", "iss")


@dataclass(frozen=True)
class AccessClaims:
    """The verified contents of an access token."""

    user_id: int
    username: str
    role: str
    permissions: list[str]
    exp: float
    iat: float


def issue_access_token(
    *, user_id: int, username: str, role: str, secret: str, issuer: str, ttl_seconds: int
) -> tuple[str, float]:
    """A signed HS256 access token and its expiry (epoch seconds)."""
    now = time.time()
    # iat keeps sub-second precision (RFC 7519 allows it) so two tokens issued in the same second differ.
    payload: dict[str, Any] = {
        "user_id": str(user_id),
        "username": username,
        "role": role,
        "permissions": permissions_for(role),
        "exp": int(now) + ttl_seconds,
        "iat": round(now, 6),
        "iss": issuer,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM), float(payload["exp"])


def decode_access_token(token: str, *, secret: str, issuer: str) -> AccessClaims:
    """Verify signature, algorithm, expiry and issuer; raise :class:`Unauthorized` otherwise."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("TOKEN_EXPIRED", "The access token has expired") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized("TOKEN_INVALID", "The access token was not issued by this server") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("TOKEN_INVALID", "The access token is invalid") from exc
    try:
        return AccessClaims(
            user_id=int(payload["user_id"]),
            username=str(payload["username"]),
            role=str(payload["role"]),
            permissions=list(payload["permissions"]),
            exp=float(payload["exp"]),
            iat=float(payload["iat"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unauthorized("TOKEN_INVALID", "The access token is missing required claims") from exc


def new_refresh_token() -> str:
    """An opaque, unguessable refresh token (384 bits)."""
    return secrets.token_urlsafe(48)


def new_session_id() -> str:
    """A login session identifier."""
    return secrets.token_urlsafe(16)


def new_api_key() -> str:
    """An API key with 256 bits of entropy, recognisable by its ``agl_`` prefix."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def looks_like_api_key(credential: str) -> bool:
    """True for credentials in API-key format (rather than JWTs)."""
    return credential.startswith(API_KEY_PREFIX)
