"""Users and sessions: login, refresh-token rotation, logout, API keys and the first admin."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from agentlightning.audit.service import CLI_ACTOR, Actor, add_entry
from agentlightning.auth import passwords, tokens
from agentlightning.auth.gate import gate_for
from agentlightning.auth.rbac import ROLES, grants, permissions_for
from agentlightning.core.context import AppContext
from agentlightning.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed
from agentlightning.storage import cache_keys
from agentlightning.storage.db import affected_rows
from agentlightning.storage.models import ApiKey, RefreshToken, RevokedToken, User
from agentlightning.storage.types import as_utc, utcnow

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when a username is unknown, so a login takes as long either way."""
    return passwords.hash_password(secrets.token_urlsafe(16), rounds=12)


@dataclass
class Principal:
    """Who is calling: a user authenticated by access token or API key."""

    user_id: int
    username: str
    role: str
    permissions: list[str] = field(default_factory=list)
    auth_method: str = "jwt"
    token: str | None = None
    token_exp: float | None = None
    #: The user's cached record (profile fields) when authentication read it anyway.
    record: dict[str, Any] | None = None
    #: The API key's id when authenticated by one (the gateway's per-key policy is keyed by it).
    api_key_id: int | None = None

    def can(self, permission: str) -> bool:
        """True when this principal holds ``permission``."""
        return grants(self.permissions, permission)


@dataclass
class TokenPair:
    """What a login or refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    token_type: str = "bearer"


def _validate_new_user(username: str, password: str, role: str) -> None:
    problems: dict[str, str] = {}
    if not username or len(username) > 255:
        problems["username"] = "must be 1-255 characters"
    if role not in ROLES:
        problems["role"] = f"must be one of {', '.join(ROLES)}"
    if (why := passwords.password_problem(password)) is not None:
        problems["password"] = why
    if problems:
        raise ValidationFailed(message="Invalid user", details={"fields": problems})


async def create_user(
    ctx: AppContext, username: str, password: str, role: str = "user", *, actor: Actor | None = None
) -> User:
    """Add a user with a bcrypt-hashed password; the username must be new.

    With ``actor`` (an admin's call, or the ``users create`` command) the creation is audited.
    """
    _validate_new_user(username, password, role)
    password_hash = await passwords.hash_password_async(password, ctx.settings.bcrypt_rounds)
    async with ctx.db.session() as session:
        user = User(username=username, password_hash=password_hash, role=role, is_active=True)
        session.add(user)
        try:
            if actor is not None:
                await session.flush()
                add_entry(
                    session,
                    actor,
                    "user.created",
                    target_type="user",
                    target=username,
                    target_id=user.id,
                    details={"role": role},
                )
            await session.commit()
        except IntegrityError as exc:
            raise Conflict("USER_EXISTS", f"User '{username}' already exists", details={"username": username}) from exc
        await session.refresh(user)
        return user


async def list_users(ctx: AppContext) -> list[User]:
    """Every user, oldest first."""
    async with ctx.db.session() as session:
        return list((await session.scalars(select(User).order_by(User.id))).all())


async def _user_named(session: Any, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound("USER_NOT_FOUND", f"User '{username}' not found", details={"username": username})
    return user


def _revoke_access_tokens(user: User) -> None:
    """Every access token issued to ``user`` until now is refused from now on."""
    user.tokens_valid_after = utcnow()


async def _end_sessions(session: Any, user_id: int) -> None:
    """Revoke every refresh token (every session) of a user."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def set_role(ctx: AppContext, username: str, role: str, *, actor: Actor | None = None) -> User:
    """Change a user's role; their access tokens (which name the old role) stop working at once.

    Their sessions go on: a refresh issues tokens with the new role. Audited as ``actor``
    (the command line when not given).
    """
    async with ctx.db.session() as session:
        user = await _user_named(session, username)
    return await update_user(ctx, actor or Actor(CLI_ACTOR), user.id, role=role, guard_last_admin=False)


async def set_password(
    ctx: AppContext, username: str, password: str, *, actor: Actor | None = None, audit: bool = True
) -> User:
    """Set a user's password; every access token and session they hold ends at once.

    Audited as ``actor`` (the command line when not given) unless ``audit`` is False (a user
    changing their own password).
    """
    if (why := passwords.password_problem(password)) is not None:
        raise ValidationFailed(message="Invalid password", details={"fields": {"password": why}})
    password_hash = await passwords.hash_password_async(password, ctx.settings.bcrypt_rounds)
    async with ctx.db.session() as session:
        user = await _user_named(session, username)
        user.password_hash = password_hash
        _revoke_access_tokens(user)
        await _end_sessions(session, user.id)
        if audit:
            add_entry(
                session,
                actor or Actor(CLI_ACTOR),
                "user.password_reset",
                target_type="user",
                target=user.username,
                target_id=user.id,
            )
        await session.commit()
    await publish_user(ctx, user)
    return user


async def change_password(ctx: AppContext, principal: Principal, current: str, new: str) -> None:
    """The caller changes their own password (the current one is required); all their tokens end."""
    async with ctx.db.session() as session:
        user = await session.get(User, principal.user_id)
        if user is None or not await passwords.verify_password_async(current, user.password_hash):
            raise Unauthorized("INVALID_CREDENTIALS", "The current password is wrong")
    await set_password(ctx, user.username, new, audit=False)


async def set_active(ctx: AppContext, username: str, active: bool, *, actor: Actor | None = None) -> User:
    """Enable or disable a user; disabling ends their access tokens and sessions at once.

    Audited as ``actor`` (the command line when not given). The command line may disable the
    last admin (it is the way back in); the API may not.
    """
    async with ctx.db.session() as session:
        user = await _user_named(session, username)
    return await update_user(ctx, actor or Actor(CLI_ACTOR), user.id, is_active=active, guard_last_admin=False)


async def _other_active_admins(session: Any, user_id: int) -> int:
    """How many active admins besides ``user_id`` there are; their rows stay locked (PostgreSQL)
    until the transaction ends, so two concurrent demotions cannot both pass the check."""
    rows = await session.scalars(
        select(User.id).where(User.role == "admin", User.is_active.is_(True)).with_for_update()
    )
    return sum(1 for other in rows.all() if other != user_id)


async def update_user(
    ctx: AppContext,
    actor: Actor,
    user_id: int,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    guard_last_admin: bool = True,
) -> User:
    """Change a user's role and/or enable or disable them, auditing each change.

    A role change ends the user's access tokens (a refresh issues tokens of the new role);
    disabling also ends every session. With ``guard_last_admin`` a change that would leave no
    active admin is refused (``LAST_ADMIN``, 409).
    """
    if role is not None and role not in ROLES:
        raise ValidationFailed(message=f"Unknown role '{role}'", details={"roles": list(ROLES)})
    async with ctx.db.session() as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound("USER_NOT_FOUND", f"User {user_id} not found", details={"user_id": user_id})
        new_role = role if role is not None else user.role
        new_active = is_active if is_active is not None else user.is_active
        was_admin = user.role == "admin" and user.is_active
        stays_admin = new_role == "admin" and new_active
        if guard_last_admin and was_admin and not stays_admin and await _other_active_admins(session, user.id) == 0:
            raise Conflict(
                "LAST_ADMIN",
                f"'{user.username}' is the last active admin; make another admin first",
                details={"user_id": user.id, "username": user.username},
            )
        if new_role != user.role:
            add_entry(
                session,
                actor,
                "user.role_changed",
                target_type="user",
                target=user.username,
                target_id=user.id,
                details={"from": user.role, "to": new_role},
            )
            user.role = new_role
            _revoke_access_tokens(user)
        if new_active != user.is_active:
            add_entry(
                session,
                actor,
                "user.enabled" if new_active else "user.disabled",
                target_type="user",
                target=user.username,
                target_id=user.id,
            )
            user.is_active = new_active
            if not new_active:
                _revoke_access_tokens(user)
                await _end_sessions(session, user.id)
        await session.commit()
    await publish_user(ctx, user)
    return user


async def reset_password(ctx: AppContext, actor: Actor, user_id: int, password: str) -> User:
    """An admin sets a user's password (audited); every token and session of the user ends."""
    user = await get_user(ctx, user_id)
    return await set_password(ctx, user.username, password, actor=actor)


def admin_view(user: User) -> dict[str, Any]:
    """A user as the admin endpoints show it."""
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_login_at": user.last_login_at,
    }


async def list_users_page(
    ctx: AppContext,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    search: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """Users matching the filters (``search`` is a username substring), oldest first, a page at a time."""
    conditions = []
    if role is not None:
        conditions.append(User.role == role)
    if is_active is not None:
        conditions.append(User.is_active.is_(is_active))
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(User.username.ilike(f"%{escaped}%", escape="\\"))
    async with ctx.db.session() as session:
        total = int(await session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0)
        rows = await session.scalars(
            select(User).where(*conditions).order_by(User.id).offset((page - 1) * page_size).limit(page_size)
        )
        return [admin_view(user) for user in rows.all()], total


async def count_users(ctx: AppContext) -> int:
    """How many users exist."""
    async with ctx.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def ensure_admin(ctx: AppContext) -> str | None:
    """Create the first admin when there are no users.

    Uses ``AGL_ADMIN_PASSWORD`` when set; otherwise generates a strong password and returns it
    so the caller can show it once. Returns None when nothing was created or nothing to show.
    """
    if await count_users(ctx) > 0:
        return None
    configured = ctx.settings.agl_admin_password
    password = configured or secrets.token_urlsafe(18)
    try:
        await create_user(ctx, ctx.settings.agl_admin_username, password, "admin")
    except Conflict:  # another process created it first
        return None
    return None if configured else password


async def _issue_pair(ctx: AppContext, session_db: Any, user: User, session_id: str) -> TokenPair:
    settings = ctx.settings
    access, _exp = tokens.issue_access_token(
        user_id=user.id,
        username=user.username,
        role=user.role,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.jwt_access_ttl_seconds,
    )
    refresh = tokens.new_refresh_token()
    session_db.add(
        RefreshToken(
            token_hash=cache_keys.token_hash(refresh),
            session_id=session_id,
            user_id=user.id,
            issued_at=utcnow(),
            expires_at=utcnow() + timedelta(seconds=settings.jwt_refresh_ttl_seconds),
        )
    )
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=settings.jwt_access_ttl_seconds, session_id=session_id
    )


async def _login_throttle(ctx: AppContext, account: str, address: str) -> RateLimited | None:
    """Why a login for ``account`` from ``address`` is refused before its password is checked.

    Failed logins count per account and per (account, address). An address over its own quota
    for the account waits for the window to slide. An account over its quota refuses addresses
    that never logged in to it, but an address that did (remembered 30 days) still may: an
    attacker spreading guesses over many addresses is slowed, yet cannot lock the owner out.
    Refused attempts are not counted, so a lock never outlives the window. Unknown usernames are
    throttled alike (no enumeration).
    """
    gate = gate_for(ctx)
    pair = f"{account}:{address}"
    if await gate.exhausted("account_address", pair):
        return await gate.refuse("account_address", pair, "Too many failed logins for this account; retry later")
    if await gate.exhausted("account", account):
        known = cache_keys.known_login_address(account, cache_keys.token_hash(address))
        if not await ctx.cache.exists(known):
            return await gate.refuse("account", account, "Too many failed logins for this account; retry later")
    return None


async def login(ctx: AppContext, username: str, password: str, address: str = "unknown") -> TokenPair:
    """Check the password and open a session; the same error for a wrong user or password.

    Failed attempts back off per account and per (account, address): see :func:`_login_throttle`.
    """
    account = cache_keys.token_hash(username)[:32]
    refused = await _login_throttle(ctx, account, address)
    if refused is not None:
        raise refused
    gate = gate_for(ctx)
    async with ctx.db.session() as session:
        user = await session.scalar(select(User).where(User.username == username))
        stored_hash = user.password_hash if user is not None else _dummy_hash()
        valid = await passwords.verify_password_async(password, stored_hash)
        if user is None or not valid or not user.is_active:
            await gate.count("account", account)
            await gate.count("account_address", f"{account}:{address}")
            raise Unauthorized("INVALID_CREDENTIALS", "Invalid username or password")
        session_id = tokens.new_session_id()
        pair = await _issue_pair(ctx, session, user, session_id)
        user.last_login_at = utcnow()
        await session.commit()
    await gate.clear("account_address", f"{account}:{address}")
    await ctx.cache.set(
        cache_keys.known_login_address(account, cache_keys.token_hash(address)), "1", cache_keys.KNOWN_LOGIN_ADDRESS_TTL
    )
    await publish_user(ctx, user)
    await ctx.cache.set_json(
        cache_keys.session(session_id),
        {"user_id": user.id, "username": user.username, "role": user.role, "created_at": utcnow().isoformat()},
        cache_keys.SESSION_TTL,
    )
    return pair


async def _revoke_session(ctx: AppContext, session: Any, session_id: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id == session_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await ctx.cache.delete(cache_keys.session(session_id))


async def refresh(ctx: AppContext, refresh_token: str) -> TokenPair:
    """Rotate a refresh token: the old one is spent; presenting a spent one ends the session."""
    digest = cache_keys.token_hash(refresh_token)
    async with ctx.db.session() as session:
        record = await session.get(RefreshToken, digest)
        if record is None or record.revoked_at is not None:
            raise Unauthorized("TOKEN_INVALID", "The refresh token is invalid or revoked")
        if record.used_at is not None:
            await _revoke_session(ctx, session, record.session_id)
            # Theft: whoever holds the stolen pair's access token loses it now, not at its expiry.
            thief_target = await session.get(User, record.user_id)
            if thief_target is not None:
                _revoke_access_tokens(thief_target)
            await session.commit()
            if thief_target is not None:
                await publish_user(ctx, thief_target)
            log.warning("refresh token reuse for user %s; session %s revoked", record.user_id, record.session_id)
            raise Unauthorized("TOKEN_REUSED", "The refresh token was already used; the session has been revoked")
        if as_utc(record.expires_at) <= utcnow():
            raise Unauthorized("TOKEN_EXPIRED", "The refresh token has expired")
        # Spend the token atomically: of two concurrent refreshes only one wins.
        spent = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest, RefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
        )
        if affected_rows(spent) != 1:
            await session.rollback()
            raise Unauthorized("TOKEN_REUSED", "The refresh token was already used")
        user = await session.get(User, record.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("TOKEN_INVALID", "The user no longer exists or is disabled")
        pair = await _issue_pair(ctx, session, user, record.session_id)
        await session.commit()
        return pair


async def logout(ctx: AppContext, principal: Principal, refresh_token: str | None) -> None:
    """Revoke the caller's access token and, when given, the refresh token's whole session."""
    async with ctx.db.session() as session:
        if principal.token and principal.token_exp:
            digest = cache_keys.token_hash(principal.token)
            expires = datetime.fromtimestamp(principal.token_exp).astimezone()
            if await session.get(RevokedToken, digest) is None:
                session.add(RevokedToken(token_hash=digest, expires_at=expires))
            ttl = max(int(principal.token_exp - utcnow().timestamp()) + 1, 1)
            await ctx.cache.set(cache_keys.jwt_blacklist(digest), str(int(utcnow().timestamp())), ttl)
        if refresh_token:
            record = await session.get(RefreshToken, cache_keys.token_hash(refresh_token))
            if record is not None and record.user_id == principal.user_id:
                await _revoke_session(ctx, session, record.session_id)
        await session.commit()


async def is_revoked(ctx: AppContext, token: str) -> bool:
    """True when an access token was revoked (cache first; the database when Redis is down)."""
    digest = cache_keys.token_hash(token)
    if await ctx.cache.exists(cache_keys.jwt_blacklist(digest)):
        return True
    if ctx.cache.healthy:
        return False
    return await _revoked_in_db(ctx, digest)


async def _revoked_in_db(ctx: AppContext, digest: str) -> bool:
    async with ctx.db.session() as session:
        return await session.get(RevokedToken, digest) is not None


def user_record(user: User) -> dict[str, Any]:
    """What the cache keeps of a user: the profile plus what authentication checks."""
    valid_after = as_utc(user.tokens_valid_after)
    return {**_profile_of(user), "tokens_valid_after": valid_after.timestamp() if valid_after else None}


async def publish_user(ctx: AppContext, user: User) -> None:
    """Write a changed user's record to the cache (after the commit), so every process sees it now."""
    await gate_for(ctx).publish_record(user.id, user_record(user))


async def _load_user_record(ctx: AppContext, user_id: int) -> dict[str, Any] | None:
    async with ctx.db.session() as session:
        user = await session.get(User, user_id)
    if user is None:
        return None
    record = user_record(user)
    # Only fills a gap: a writer's newer record stored meanwhile is never overwritten.
    await gate_for(ctx).fill_record(user_id, record)
    return record


async def authenticate_token(ctx: AppContext, token: str, *, rate_limit: bool = False) -> Principal:
    """The principal an access token or API key stands for; :class:`Unauthorized` otherwise.

    Checked on every call: signature and expiry (verified once per process, then cached by hash),
    the blacklist, and the user's record (active, role, ``tokens_valid_after``). With
    ``rate_limit`` the user's request quota is counted in the same Redis round trip.
    """
    gate = gate_for(ctx)
    if tokens.looks_like_api_key(token):
        if rate_limit:
            # A key remembered by this process: revocation, the user's record and the quota in one
            # round trip, as for an access token.
            digest = cache_keys.token_hash(token)
            cached = gate.remembered_api_key(digest)
            if cached is not None:
                revoked, record, allowed = await gate.admit(digest, cached.user_id)
                if record is None and not revoked:
                    record = await _load_user_record(ctx, cached.user_id)
                if not revoked and record is not None and _record_admits(record, cached.role):
                    if allowed is False:
                        raise await gate.refuse("user", str(cached.user_id))
                    return cached
                gate.api_keys.pop(digest, None)
        principal = await authenticate_api_key(ctx, token)
        if rate_limit:
            await gate.check("user", str(principal.user_id))
        return principal
    claims, digest = gate.verify(token)
    if rate_limit:
        revoked, record, allowed = await gate.admit(digest, claims.user_id)
    else:
        revoked, record, allowed = (
            await ctx.cache.exists(cache_keys.jwt_blacklist(digest)),
            await gate.record(claims.user_id),
            None,
        )
    if not ctx.cache.healthy:  # Redis is away: the database is the authority
        revoked = revoked or await _revoked_in_db(ctx, digest)
    if revoked:
        raise Unauthorized("TOKEN_REVOKED", "The access token has been revoked")
    if record is None:
        record = await _load_user_record(ctx, claims.user_id)
    valid_after = record.get("tokens_valid_after") if record else None
    if (
        record is None
        or not record.get("is_active")
        or record.get("role") != claims.role
        or (valid_after is not None and claims.iat < valid_after)
    ):
        raise Unauthorized("TOKEN_REVOKED", "The access token has been revoked")
    if allowed is False:
        raise await gate.refuse("user", str(claims.user_id))
    return Principal(
        user_id=claims.user_id,
        username=claims.username,
        role=claims.role,
        permissions=permissions_for(claims.role),
        auth_method="jwt",
        token=token,
        token_exp=claims.exp,
        record=record,
    )


async def authenticate_api_key(ctx: AppContext, key: str) -> Principal:
    """The owner of an unrevoked, unexpired API key.

    A key found valid is remembered for ``AUTH_API_KEY_CACHE_SECONDS`` (a machine client such as
    an OpenAI SDK calls many times a second): within that time the user's cached record still
    decides (a disabled user or a changed role is refused at once), and revoking the key in this
    process forgets it at once; another process notices a revocation within those seconds.
    """
    gate = gate_for(ctx)
    digest = cache_keys.token_hash(key)
    ttl = ctx.settings.auth_api_key_cache_seconds
    if ttl > 0:
        cached: Principal | None = gate.remembered_api_key(digest)
        if cached is not None:
            revoked = await ctx.cache.exists(cache_keys.jwt_blacklist(digest))
            record = None if revoked else await gate.record(cached.user_id)
            if record is None and not revoked:
                record = await _load_user_record(ctx, cached.user_id)
            if not revoked and record is not None and _record_admits(record, cached.role):
                return cached
        gate.api_keys.pop(digest, None)
    principal = await _api_key_principal(ctx, digest)
    if ttl > 0:
        if len(gate.api_keys) > 100_000:
            gate.api_keys.clear()
        gate.api_keys[digest] = (time.monotonic() + ttl, principal)
    return principal


def _record_admits(record: dict[str, Any], role: str) -> bool:
    """True when a user's cached record still admits a principal of ``role``."""
    return bool(record.get("is_active")) and record.get("role") == role


async def _api_key_principal(ctx: AppContext, digest: str) -> Principal:
    async with ctx.db.session() as session:
        row = (
            await session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == digest)
            )
        ).first()
        if row is None:
            raise Unauthorized("INVALID_API_KEY", "The API key is invalid")
        api_key, user = row
        now = utcnow()
        if api_key.revoked_at is not None or not user.is_active:
            raise Unauthorized("INVALID_API_KEY", "The API key has been revoked")
        if api_key.expires_at is not None and as_utc(api_key.expires_at) <= now:
            raise Unauthorized("INVALID_API_KEY", "The API key has expired")
        last_used = as_utc(api_key.last_used_at)
        if last_used is None or (now - last_used).total_seconds() > 60:
            api_key.last_used_at = now
            await session.commit()
        return Principal(
            user_id=user.id,
            username=user.username,
            role=user.role,
            permissions=permissions_for(user.role),
            auth_method="api_key",
            api_key_id=api_key.id,
        )


async def create_api_key(ctx: AppContext, user_id: int, name: str, expires_in_days: int | None) -> tuple[ApiKey, str]:
    """A new API key for ``user_id``; the plaintext is returned once and never stored."""
    key = tokens.new_api_key()
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    async with ctx.db.session() as session:
        record = ApiKey(
            user_id=user_id,
            name=name,
            key_prefix=key[:10],
            key_hash=cache_keys.token_hash(key),
            created_at=utcnow(),
            expires_at=expires,
        )
        session.add(record)
        await session.commit()
        await session.refresh(record)
        return record, key


async def list_api_keys(ctx: AppContext, user_id: int) -> list[ApiKey]:
    """The caller's API keys (without secrets)."""
    async with ctx.db.session() as session:
        result = await session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id))
        return list(result.all())


async def revoke_api_key(ctx: AppContext, user_id: int, key_id: int) -> None:
    """Revoke one of the caller's API keys."""
    async with ctx.db.session() as session:
        record = await session.get(ApiKey, key_id)
        if record is None or record.user_id != user_id:
            raise NotFound("API_KEY_NOT_FOUND", f"API key {key_id} not found", details={"api_key_id": key_id})
        record.revoked_at = record.revoked_at or utcnow()
        digest = record.key_hash
        await session.commit()
    # This process forgets it now; the others see the blacklist entry on their next use of it.
    gate_for(ctx).api_keys.pop(digest, None)
    ttl = int(ctx.settings.auth_api_key_cache_seconds) + 1
    await ctx.cache.set(cache_keys.jwt_blacklist(digest), str(int(utcnow().timestamp())), ttl)


def _profile_of(user: User) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "username": user.username,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": user.created_at.isoformat() if user.created_at else None,
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


PROFILE_FIELDS = ("user_id", "username", "role", "is_active", "created_at", "last_login_at")


async def get_profile(ctx: AppContext, user_id: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A user's public record: ``record`` when authentication already read it, else the cache
    (rewritten by every change of the user), else the database."""
    if record is None:
        record = await gate_for(ctx).record(user_id)
        if record is None:
            record = await _load_user_record(ctx, user_id)
            if record is None:
                raise NotFound("USER_NOT_FOUND", f"User {user_id} not found")
    return {name: record.get(name) for name in PROFILE_FIELDS}


async def get_user(ctx: AppContext, user_id: int) -> User:
    """A user by id."""
    async with ctx.db.session() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("USER_NOT_FOUND", f"User {user_id} not found")
        return user
