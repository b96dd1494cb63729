"""Per-caller rate limiting with the ``limits`` library (Redis storage when configured)."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from agentlightning.errors import RateLimited
from agentlightning.observability import metrics
from agentlightning.settings import Settings

log = logging.getLogger(__name__)


class RateLimiter:
    """Checks request quotas: per user when authenticated, per client IP otherwise."""

    def __init__(self, settings: Settings) -> None:
        self.storage: Storage
        if settings.redis_url:
            url = settings.redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
            # redis-py (already a dependency) rather than limits' default coredis client.
            self.storage = storage_from_string(
                url,
                implementation="redispy",
                key_prefix=f"{settings.agl_events_prefix}:limits",
                socket_timeout=1.0,
                socket_connect_timeout=1.0,
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.namespace = settings.agl_events_prefix
        self.limits: dict[str, RateLimitItem] = {
            "user": parse(settings.rate_limit_default),
            "anonymous": parse(settings.rate_limit_anonymous),
            "login": parse(settings.rate_limit_login),
        }
        self._warned_at = 0.0

    async def check(self, scope: str, identity: str) -> None:
        """Count one request; raise :class:`RateLimited` (with ``Retry-After``) when over quota.

        If the limit store is unreachable the request is let through (fail open) and logged.
        """
        item = self.limits[scope]
        try:
            allowed = await self.strategy.hit(item, self.namespace, scope, identity)
            if allowed:
                return
            stats = await self.strategy.get_window_stats(item, self.namespace, scope, identity)
        except Exception as exc:  # the store is down: serve rather than refuse everyone
            if time.monotonic() - self._warned_at > 30:
                log.warning("rate-limit store unavailable (%s); not limiting", exc)
                self._warned_at = time.monotonic()
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        metrics.RATE_LIMITED.labels(scope=scope).inc()
        raise RateLimited(
            "RATE_LIMITED",
            f"Rate limit of {item} exceeded; retry in {retry_after} s",
            details={"limit": str(item), "retry_after_seconds": retry_after},
            retry_after=retry_after,
        )
