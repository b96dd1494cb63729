"""Request bodies and public (response) shapes of ``/auth``: login, tokens, profile, API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentlightning.validation import Text
from agentlightning.vocabulary import UserRole


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


class PasswordChangeRequest(BaseModel):
    """The current password and the new one."""

    model_config = ConfigDict(extra="forbid")
    current_password: Text = Field(min_length=1, max_length=1024)
    new_password: Text = Field(min_length=1, max_length=1024)


class ApiKeyCreate(BaseModel):
    """A name for the key and an optional lifetime."""

    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=255)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


#: The name the routes used before the models moved here.
ApiKeyRequest = ApiKeyCreate


class TokenPairPublic(BaseModel):
    """An access token (JWT) and the refresh token that renews it."""

    access_token: str
    refresh_token: str = Field(description="opaque; single use: each refresh returns a new one")
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class UserProfile(BaseModel):
    """The caller's user record with what they may do."""

    user_id: int
    username: str
    role: str
    is_active: bool
    created_at: datetime | None = None
    last_login_at: datetime | None = None
    permissions: list[str]
    auth_method: str = Field(description="'jwt' or 'api_key'")


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    id: int
    name: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked: bool = False


class ApiKeyCreated(BaseModel):
    """A new API key: ``key`` is shown only in this response."""

    id: int
    name: str
    key: str
    prefix: str
    expires_at: datetime | None = None


class AdminUserCreate(BaseModel):
    """A new user, created by an admin."""

    model_config = ConfigDict(extra="forbid")
    username: Text = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.@+-]+$")
    password: Text = Field(min_length=1, max_length=1024)
    role: UserRole = "user"


class AdminUserUpdate(BaseModel):
    """A change of role and/or of the enabled state; at least one of them."""

    model_config = ConfigDict(extra="forbid")
    role: UserRole | None = None
    is_active: bool | None = Field(default=None, description="false disables the user (their tokens end)")

    @model_validator(mode="after")
    def _something_to_change(self) -> AdminUserUpdate:
        if self.role is None and self.is_active is None:
            raise ValueError("give 'role' and/or 'is_active'")
        return self


class PasswordReset(BaseModel):
    """The new password an admin sets for a user."""

    model_config = ConfigDict(extra="forbid")
    password: Text = Field(min_length=1, max_length=1024)


class AdminUserPublic(BaseModel):
    """A user as an admin sees it (never the password hash)."""

    id: int
    username: str
    role: UserRole
    is_active: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login_at: datetime | None = None


class AdminUserPage(BaseModel):
    """A page of users, oldest first."""

    items: list[AdminUserPublic]
    total: int
    page: int
    page_size: int
