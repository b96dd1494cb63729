"""Per-API-key gateway policy: allowed models, request rate, token budget, body size, timeout.

:class:`PolicyService` is the one writer of ``gateway_key_policies``. What applies to a call is a
:class:`Policy`: the key's row with the deployment's ``GATEWAY_*`` defaults filled in (a JWT
caller, or a key without a row, gets the defaults alone).

:class:`Budgets` counts with ``limits``, like the rest of the platform: a sliding-window counter of
requests and a fixed-window counter of tokens per key (Redis when configured, sharing the cache's
connection pool; in-process otherwise). The token budget is checked before a call (an exhausted
budget is a 429) and charged with the call's real usage after it. An unreachable store lets
calls through (fail open), logged, as the platform's other limits do.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter as SyncFixedWindowRateLimiter
from limits.strategies import SlidingWindowCounterRateLimiter as SyncSlidingWindowCounterRateLimiter
from sqlalchemy import delete as sa_delete
from sqlalchemy import select

from agentlightning.auth.gate import LoopMemoryStorage
from agentlightning.core.context import AppContext
from agentlightning.errors import NotFound, RateLimited
from agentlightning.gateway.schemas import GatewayPolicyIn
from agentlightning.observability import metrics
from agentlightning.settings import Settings
from agentlightning.storage.cache import RedisCache
from agentlightning.storage.models import ApiKey, GatewayKeyPolicy
from agentlightning.storage.types import as_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    """What one caller may do through ``/v1`` (defaults filled in)."""

    allowed_models: frozenset[str] | None
    rate: RateLimitItem
    token_budget: int
    budget: RateLimitItem | None
    max_request_bytes: int
    upstream_timeout_s: float

    def allows(self, model: str, provider: str) -> bool:
        """True when the policy lets the caller use ``model`` (served by ``provider``)."""
        allowed = self.allowed_models
        return allowed is None or model in allowed or f"{provider}/*" in allowed

    def describe(self) -> dict[str, Any]:
        """The values in force, as the admin API shows them."""
        return {
            "allowed_models": sorted(self.allowed_models) if self.allowed_models is not None else None,
            "rate_limit": str(self.rate),
            "token_budget": self.token_budget,
            "budget_window": _window_of(self.budget),
            "max_request_bytes": self.max_request_bytes,
            "upstream_timeout_seconds": self.upstream_timeout_s,
        }


def _window_of(item: RateLimitItem | None) -> str | None:
    return None if item is None else str(item.GRANULARITY.name)


def build_policy(row: GatewayKeyPolicy | None, settings: Settings) -> Policy:
    """The policy a key's row (or none) gives, over the settings' defaults."""
    budget = settings.gateway_default_token_budget
    window = settings.gateway_budget_window
    rate = settings.gateway_default_rate_limit
    allowed = None
    max_bytes = settings.gateway_max_request_bytes
    timeout = settings.gateway_upstream_timeout_seconds
    if row is not None:
        allowed = frozenset(row.allowed_models) if row.allowed_models is not None else None
        rate = row.rate_limit or rate
        budget = row.token_budget if row.token_budget is not None else budget
        window = row.budget_window or window  # type: ignore[assignment]  # checked on write
        max_bytes = row.max_request_bytes or max_bytes
        timeout = row.upstream_timeout_seconds or timeout
    return Policy(
        allowed_models=allowed,
        rate=parse(rate),
        token_budget=budget,
        budget=parse(f"{budget}/1 {window}") if budget > 0 else None,
        max_request_bytes=max_bytes,
        upstream_timeout_s=timeout,
    )


def identity_of(api_key_id: int | None, user_id: int) -> str:
    """Whose counters a call uses: its API key's, or (a JWT caller) the user's."""
    return f"key:{api_key_id}" if api_key_id is not None else f"user:{user_id}"


class Budgets:
    """Request-rate and token-budget counters per key (``limits``)."""

    def __init__(self, ctx: AppContext) -> None:
        self.namespace = f"{ctx.settings.agl_events_prefix}:gateway"
        storage: Any
        if isinstance(ctx.cache, RedisCache):
            url = ctx.cache.url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
            storage = storage_from_string(
                url,
                implementation="redispy",
                key_prefix=f"{ctx.settings.agl_events_prefix}:gwlimits",
                connection_pool=ctx.cache.client.connection_pool,  # type: ignore[arg-type]  # passed to redis-py
            )
            self.requests: Any = SlidingWindowCounterRateLimiter(storage)
            self.tokens: Any = FixedWindowRateLimiter(storage)
            self._sync = False
        else:
            # In-process: limits' synchronous strategies over the auth gate's loop-friendly memory
            # storage (on one event loop a call runs to completion; no lock or await per call).
            memory = LoopMemoryStorage()
            self.requests = SyncSlidingWindowCounterRateLimiter(memory)
            self.tokens = SyncFixedWindowRateLimiter(memory)
            self._sync = True
        self._warned_at = 0.0

    async def _call(self, result: Any) -> Any:
        return result if self._sync else await result

    def _down(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at > 30:
            log.warning("gateway limit store unavailable (%s); not limiting", exc)
            self._warned_at = time.monotonic()

    async def admit(self, who: str, policy: Policy) -> None:
        """Count one request of ``who``; 429 over its rate or with its token budget spent."""
        try:
            allowed = await self._call(self.requests.hit(policy.rate, self.namespace, "req", who))
        except Exception as exc:  # the store is down: serve rather than refuse everyone
            self._down(exc)
            return
        if not allowed:
            retry = await self._retry_after(self.requests, policy.rate, "req", who)
            metrics.RATE_LIMITED.labels(scope="gateway").inc()
            raise RateLimited(
                "RATE_LIMITED",
                f"Rate limit of {policy.rate} reached for this API key; retry in {retry} s",
                details={"limit": str(policy.rate), "retry_after_seconds": retry},
                retry_after=retry,
            )
        if policy.budget is None:
            return
        try:
            left = await self._call(self.tokens.test(policy.budget, self.namespace, "tok", who))
        except Exception as exc:
            self._down(exc)
            return
        if not left:
            retry = await self._retry_after(self.tokens, policy.budget, "tok", who)
            metrics.RATE_LIMITED.labels(scope="gateway_tokens").inc()
            raise RateLimited(
                "TOKEN_BUDGET_EXHAUSTED",
                f"The token budget of this API key ({policy.budget}) is spent; it renews in {retry} s",
                details={"limit": str(policy.budget), "retry_after_seconds": retry},
                retry_after=retry,
            )

    async def _retry_after(self, strategy: Any, item: RateLimitItem, kind: str, who: str) -> int:
        try:
            stats = await self._call(strategy.get_window_stats(item, self.namespace, kind, who))
            return max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:
            return int(item.get_expiry())

    async def charge(self, who: str, policy: Policy, tokens: int) -> None:
        """Count ``tokens`` used by a finished call against ``who``'s budget."""
        if policy.budget is None or tokens <= 0:
            return
        try:
            await self._call(self.tokens.hit(policy.budget, self.namespace, "tok", who, cost=tokens))
        except Exception as exc:
            self._down(exc)

    async def used(self, who: str, policy: Policy) -> int:
        """Tokens counted in ``who``'s current budget window."""
        if policy.budget is None:
            return 0
        try:  # the counter itself (window stats stop at the budget; a last call may go past it)
            key = policy.budget.key_for(self.namespace, "tok", who)
            return int(await self._call(self.tokens.storage.get(key)) or 0)
        except Exception as exc:
            self._down(exc)
            return 0


class PolicyService:
    """The one writer of ``gateway_key_policies`` (admin operations)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def load(self, api_key_id: int) -> GatewayKeyPolicy | None:
        """A key's stored policy row, if any."""
        async with self.ctx.db.session() as session:
            return await session.get(GatewayKeyPolicy, api_key_id)

    async def _key(self, session: Any, api_key_id: int) -> ApiKey:
        key = await session.get(ApiKey, api_key_id)
        if key is None:
            raise NotFound("API_KEY_NOT_FOUND", f"API key {api_key_id} not found", details={"api_key_id": api_key_id})
        return key

    async def _public(self, api_key_id: int, row: GatewayKeyPolicy | None) -> dict[str, Any]:
        from agentlightning.gateway.service import gateway_for

        policy = build_policy(row, self.ctx.settings)
        used = await gateway_for(self.ctx).budgets.used(identity_of(api_key_id, 0), policy)
        return {
            "api_key_id": api_key_id,
            "allowed_models": list(row.allowed_models) if row and row.allowed_models is not None else None,
            "rate_limit": row.rate_limit if row else None,
            "token_budget": row.token_budget if row else None,
            "budget_window": row.budget_window if row else None,
            "max_request_bytes": row.max_request_bytes if row else None,
            "upstream_timeout_seconds": row.upstream_timeout_seconds if row else None,
            "updated_at": as_utc(row.updated_at) if row else None,
            "updated_by": row.updated_by if row else None,
            "effective": policy.describe(),
            "tokens_used": used,
        }

    async def get(self, api_key_id: int) -> dict[str, Any]:
        """A key's policy (stored, effective, budget used); 404 for an unknown key."""
        async with self.ctx.db.session() as session:
            await self._key(session, api_key_id)
            row = await session.get(GatewayKeyPolicy, api_key_id)
        return await self._public(api_key_id, row)

    async def put(self, api_key_id: int, body: GatewayPolicyIn, actor: str) -> dict[str, Any]:
        """Replace a key's policy (fields left null take the defaults)."""
        async with self.ctx.db.session() as session:
            await self._key(session, api_key_id)
            row = await session.get(GatewayKeyPolicy, api_key_id)
            if row is None:
                row = GatewayKeyPolicy(api_key_id=api_key_id)
                session.add(row)
            row.allowed_models = body.allowed_models
            row.rate_limit = body.rate_limit
            row.token_budget = body.token_budget
            row.budget_window = body.budget_window
            row.max_request_bytes = body.max_request_bytes
            row.upstream_timeout_seconds = body.upstream_timeout_seconds
            row.updated_by = actor
            await session.commit()
            await session.refresh(row)
        self._forget(api_key_id)
        return await self._public(api_key_id, row)

    async def delete(self, api_key_id: int) -> dict[str, Any]:
        """Drop a key's policy: the defaults apply again."""
        async with self.ctx.db.session() as session:
            await self._key(session, api_key_id)
            await session.execute(sa_delete(GatewayKeyPolicy).where(GatewayKeyPolicy.api_key_id == api_key_id))
            await session.commit()
        self._forget(api_key_id)
        return await self._public(api_key_id, None)

    def _forget(self, api_key_id: int) -> None:
        from agentlightning.gateway.service import gateway_for

        gateway_for(self.ctx).forget_policy(api_key_id)


async def effective_policy(ctx: AppContext, api_key_id: int | None) -> Policy:
    """The policy of a key read from the database now (callers cache it)."""
    row = None
    if api_key_id is not None:
        async with ctx.db.session() as session:
            row = await session.scalar(select(GatewayKeyPolicy).where(GatewayKeyPolicy.api_key_id == api_key_id))
    return build_policy(row, ctx.settings)
