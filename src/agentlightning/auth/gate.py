"""Admission of one request: its quota, its token's signature, revocation and its user's state.

The request path's hot spot, so it does only the work a request needs:

* A token's signature and claims are verified once per process and kept (by token hash) in a
  small bounded cache until the token expires; a forged or expired token is never cached.
* Revocation is still checked on every request: the ``jwt:blacklist:{hash}`` entry, and the
  user's cached record (role, active flag, ``tokens_valid_after``), which every change of the user
  rewrites. With Redis both lookups and the caller's rate-limit counter (``limits``' own sliding
  window Lua script, run inside :data:`ADMIT_LUA`) are ONE command, one round trip.
* Redis unreachable: the database answers for revocation and the user, and the limiter lets the
  request through (fail open), as before.
"""

from __future__ import annotations

import logging
import math
import os
import time
import weakref
from typing import Any, Generic, TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage as LimitsRedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import MemoryStorage as SyncMemoryStorage
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter as SyncSlidingWindowCounterRateLimiter
from redis.exceptions import NoScriptError, RedisError

from agentlightning.auth import tokens
from agentlightning.auth.tokens import AccessClaims
from agentlightning.errors import RateLimited, Unauthorized
from agentlightning.observability import metrics
from agentlightning.storage import cache_keys
from agentlightning.storage.cache import RedisCache

#: How long a user's record is trusted in the cache (every change of the user rewrites it anyway).
RECORD_TTL_SECONDS = float(cache_keys.USER_PROFILE_TTL)

log = logging.getLogger(__name__)

#: Longest a verified token's claims stay in memory (its own expiry comes first when sooner).
CLAIMS_TTL_SECONDS = 300.0


#: How many limits keys (one per scope and identity) are remembered before the memo starts over.
KEY_MEMO_SIZE = 100_000

K = TypeVar("K")
V = TypeVar("V")


class ExpiringMap(Generic[K, V]):
    """A bounded dictionary whose entries expire at a time of their own (POSIX seconds): a hit is
    one dictionary lookup and one comparison. When full, expired entries go first, then the oldest
    ones (in place of ``cachetools.TLRUCache``, whose lookups cost a dozen Python calls)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: dict[K, tuple[float, V]] = {}

    def get(self, key: K, now: float) -> V | None:
        """The live value of ``key`` at time ``now`` (an expired entry is dropped), or None."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            self._data.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, value: V, expires_at: float) -> None:
        """Keep ``value`` under ``key`` until ``expires_at`` (same clock as :meth:`get`'s ``now``)."""
        data = self._data
        data.pop(key, None)
        if len(data) >= self.maxsize:
            now = time.time()
            for stale in [k for k, (at, _) in data.items() if at <= now]:
                del data[stale]
            while len(data) >= self.maxsize:
                del data[next(iter(data))]
        data[key] = (expires_at, value)


class LoopMemoryStorage(SyncMemoryStorage):
    """``limits``' in-process storage, counting without a timer thread per hit.

    The stock storage arms a 10 ms ``threading.Timer`` on every counter update once the last
    one has fired, so a busy server starts a thread (and hands the GIL over to it) about a
    hundred times a second just to reclaim expired keys. Expiry never depended on that sweep
    (``get`` drops an expired counter before reading it); here expired counters are reclaimed
    inline, at most once every :attr:`SWEEP_SECONDS`. Counting and windows are ``limits``' own.
    """

    #: How often expired counters are reclaimed (memory only; expiry is exact regardless).
    SWEEP_SECONDS = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = time.monotonic() + self.SWEEP_SECONDS

    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.SWEEP_SECONDS
        wall = time.time()
        for key in [k for k, at in self.expirations.items() if at <= wall]:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)

    def _live(self, key: str, now: float) -> int:
        """``key``'s counter, dropped first if it has expired (``limits``' ``get``, unwrapped)."""
        if self.expirations.get(key, 0) <= now:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)
        return self.storage.get(key, 0)

    def _add(self, key: str, expiry: float, amount: int) -> int:
        self._sweep()
        self._live(key, time.time())
        with self.locks[key]:
            self.storage[key] += amount
            if self.storage[key] == amount:
                self.expirations[key] = time.time() + expiry
        return self.storage.get(key, 0)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter (a fresh counter expires in ``expiry`` seconds)."""
        return self._add(key, expiry, amount)

    def decr(self, key: str, amount: int = 1) -> int:
        """Take ``amount`` from ``key``'s counter (never below zero)."""
        self._live(key, time.time())
        with self.locks[key]:
            self.storage[key] = max(self.storage[key] - amount, 0)
        return self.storage.get(key, 0)

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """``limits``' sliding-window acquisition, step for step (the same keys, weights and race
        handling), without its per-call wrappers: one hit is a handful of dictionary operations."""
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_count = self._live(previous_key, now)
        current_count = self._live(current_key, now)
        previous_ttl = 0.0 if previous_count == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        weighted_count = previous_count * previous_ttl / expiry + current_count
        if math.floor(weighted_count) + amount > limit:
            return False
        # Hit: count it in the current window (a new counter lives for twice the window).
        current_count = self._add(current_key, 2 * expiry, amount)
        weighted_count = previous_count * previous_ttl / expiry + current_count
        if math.floor(weighted_count) > limit:
            self.decr(current_key, amount)  # another hit won the race: take this one back
            return False
        return True


#: One round trip for an authenticated request: KEYS = blacklist entry, user record, then limits'
#: previous and current window keys; ARGV = limit, window seconds, cost. Returns
#: {revoked 0/1, the record or nil, allowed 0/1}. ``--ACQUIRE--`` becomes limits' own script.
ADMIT_LUA = """
local revoked = redis.call('exists', KEYS[1])
local record = redis.call('get', KEYS[2])
local function acquire(KEYS, ARGV)
--ACQUIRE--
end
local allowed = acquire({KEYS[3], KEYS[4]}, {ARGV[1], ARGV[2], ARGV[3]})
if allowed then allowed = 1 else allowed = 0 end
return {revoked, record, allowed}
"""


class AuthGate:
    """Per process context: the claims cache, the rate limiter and the one-round-trip check."""

    def __init__(self, ctx: Any) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.secret = settings.jwt_secret
        self.issuer = settings.jwt_issuer
        self.claims: ExpiringMap[str, AccessClaims] = ExpiringMap(max(settings.auth_claims_cache_size, 1))
        self.cache_claims = settings.auth_claims_cache_size > 0
        self.namespace = settings.agl_events_prefix
        self.storage: Any = None  # limits' async storage (Redis), typed loosely by the library
        self._redis: Any = None
        # In-process mode: limits' synchronous memory storage. On one event loop a call runs to
        # completion anyway, and it skips the async storage's lock and awaits on every request.
        self._memory: LoopMemoryStorage | None = None
        if isinstance(ctx.cache, RedisCache):
            url = ctx.cache.url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
            # limits' storage shares the cache's connection pool: one client, one set of sockets.
            self.storage = storage_from_string(
                url,
                implementation="redispy",
                key_prefix=f"{settings.agl_events_prefix}:limits",
                connection_pool=ctx.cache.client.connection_pool,  # type: ignore[arg-type]  # passed to redis-py
            )
            self._redis = ctx.cache.client
        else:
            self._memory = LoopMemoryStorage()
            self._sync_strategy = SyncSlidingWindowCounterRateLimiter(self._memory)
        if self.storage is not None:
            self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._keys: dict[tuple[str, str], str] = {}
        self.limits: dict[str, RateLimitItem] = {
            "user": parse(settings.rate_limit_default),
            "anonymous": parse(settings.rate_limit_anonymous),
            "login": parse(settings.rate_limit_login),
            "account": parse(settings.login_failures_per_account),
            "account_address": parse(settings.login_failures_per_account_address),
        }
        self._warned_at = 0.0
        self._admit: Any = None  # the registered admission script (Redis only), made on first use
        #: Authenticated API keys by hash: (monotonic expiry, principal), AUTH_API_KEY_CACHE_SECONDS.
        self.api_keys: dict[str, tuple[float, Any]] = {}
        # In-process mode: parsed user records, dropped whenever the SQLite files change (another
        # process such as the CLI may have changed a user; stat() is far cheaper than a query).
        self._records: dict[int, tuple[float, dict[str, Any]]] = {}
        self._db_files = _sqlite_files(settings.database_url) if self._redis is None else []
        self._db_stamp = self._stamp()

    def _stamp(self) -> tuple[int, ...]:
        stamp = []
        for path in self._db_files:
            try:
                st = os.stat(path)
                stamp += [st.st_mtime_ns, st.st_size]
            except OSError:
                stamp += [0, 0]
        return tuple(stamp)

    # --- user records ---------------------------------------------------------------------------
    def _local_record(self, user_id: int) -> dict[str, Any] | None:
        if self._db_files:
            stamp = self._stamp()
            if stamp != self._db_stamp:
                self._db_stamp = stamp
                self._records.clear()
        entry = self._records.get(user_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    async def record(self, user_id: int) -> dict[str, Any] | None:
        """The user's cached record, if any (no quota counted)."""
        if self._redis is None:
            return self._local_record(user_id)
        return await self.ctx.cache.get_json(cache_keys.user_profile(user_id), stat="user_profile")

    async def fill_record(self, user_id: int, record: dict[str, Any]) -> None:
        """Cache a record read from the database after a miss (never overwrites a newer one)."""
        if self._redis is None:
            self._records.setdefault(user_id, (time.monotonic() + RECORD_TTL_SECONDS, record))
            return
        await self.ctx.cache.add_json(cache_keys.user_profile(user_id), record, cache_keys.USER_PROFILE_TTL)

    async def publish_record(self, user_id: int, record: dict[str, Any]) -> None:
        """Cache a user's record just changed in the database (after the commit)."""
        if self._redis is None:
            self._records[user_id] = (time.monotonic() + RECORD_TTL_SECONDS, record)
            return
        await self.ctx.cache.set_json(cache_keys.user_profile(user_id), record, cache_keys.USER_PROFILE_TTL)

    async def forget_record(self, user_id: int) -> None:
        """Drop a user's cached record (the next request reads the database)."""
        self._records.pop(user_id, None)
        await self.ctx.cache.delete(cache_keys.user_profile(user_id))

    def remembered_api_key(self, digest: str) -> Any:
        """The principal of an API key this process found valid within its memory time, or None."""
        hit = self.api_keys.get(digest)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self.api_keys.pop(digest, None)
            return None
        return hit[1]

    # --- tokens ---------------------------------------------------------------------------------
    def verify(self, token: str) -> tuple[AccessClaims, str]:
        """The token's verified claims and its SHA-256 (signature checked once per process)."""
        digest = cache_keys.token_hash(token)
        now = time.time()
        claims = self.claims.get(digest, now) if self.cache_claims else None
        if claims is None:
            claims = tokens.decode_access_token(token, secret=self.secret, issuer=self.issuer)
            if self.cache_claims:
                self.claims.put(digest, claims, min(claims.exp, now + CLAIMS_TTL_SECONDS))
        elif claims.exp <= now:  # the map drops it at expiry; this is the exact check
            raise Unauthorized("TOKEN_EXPIRED", "The access token has expired")
        return claims, digest

    async def admit(self, digest: str, user_id: int) -> tuple[bool, dict[str, Any] | None, bool | None]:
        """(revoked?, cached user record or None, quota allowed? or None when not counted).

        With Redis: one pipelined round trip. In-process: three dictionary lookups.
        """
        blacklist = cache_keys.jwt_blacklist(digest)
        item = self.limits["user"]
        if self._redis is None:
            revoked = await self.ctx.cache.exists(blacklist)
            record = self._local_record(user_id)
            allowed = await self._hit(item, "user", str(user_id))
            return revoked, record, allowed
        record_key = cache_keys.user_profile(user_id)
        cache: RedisCache = self.ctx.cache
        if not cache.healthy:
            return False, None, None
        keys = [blacklist, record_key, *self._window_keys(self._key("user", str(user_id)))]
        script = self._admit_script()
        # EVALSHA through the cache's command batcher: the checks of concurrent requests share a
        # round trip (redis-py's script object would send each alone, and again on a pipeline).
        arguments = (len(keys), *keys, item.amount, item.get_expiry(), 1)
        try:
            try:
                results = await cache.commands.execute("EVALSHA", script.sha, *arguments)
            except NoScriptError:  # Redis restarted and forgot the script: load it, then run it
                script.sha = await self._redis.script_load(script.script)
                results = await cache.commands.execute("EVALSHA", script.sha, *arguments)
        except (RedisError, OSError, TimeoutError) as exc:
            cache.mark_failed("auth_check", exc)
            return False, None, None
        revoked_raw, record_raw, acquired = results
        record = cache.decode_json(record_raw, stat="user_profile")
        return bool(revoked_raw), record, bool(acquired)

    def _admit_script(self) -> Any:
        """The one-round-trip check as a registered script (its SHA and source): ``EXISTS`` of the
        blacklist entry, ``GET`` of the user's record, and ``limits``' own sliding-window
        acquisition, its Lua source run as a function on the library's own keys, so ``limits``'
        ``get_window_stats`` and ``clear`` see the same counter."""
        if self._admit is None:
            storage = self.storage
            assert isinstance(storage, LimitsRedisStorage)
            acquire = storage.bridge.lua_acquire_sliding_window.script  # type: ignore[attr-defined]
            if isinstance(acquire, bytes):
                acquire = acquire.decode()
            self._admit = self._redis.register_script(ADMIT_LUA.replace("--ACQUIRE--", acquire))
        return self._admit

    def _window_keys(self, key: str) -> tuple[str, str]:
        """limits' (previous, current) sliding-window keys for ``key``, with its prefix."""
        storage = self.storage
        assert isinstance(storage, LimitsRedisStorage)
        bridge = storage.bridge
        return (
            bridge.prefixed_key(storage._previous_window_key(key)),
            bridge.prefixed_key(storage._current_window_key(key)),
        )

    def _acquire_sha(self) -> str:
        storage = self.storage
        assert isinstance(storage, LimitsRedisStorage)
        return str(storage.bridge.lua_acquire_sliding_window.sha)  # type: ignore[attr-defined]

    # --- rate limits ----------------------------------------------------------------------------
    def _key(self, scope: str, identity: str) -> str:
        """limits' key for ``scope``/``identity`` (built once per identity, then remembered)."""
        key = self._keys.get((scope, identity))
        if key is None:
            key = self.limits[scope].key_for(self.namespace, scope, identity)
            if len(self._keys) >= KEY_MEMO_SIZE:
                self._keys.clear()  # a key is cheap to rebuild; this only bounds the memory
            self._keys[(scope, identity)] = key
        return key

    async def _hit(self, item: RateLimitItem, scope: str, identity: str) -> bool | None:
        try:
            if self._memory is not None:
                return self._memory.acquire_sliding_window_entry(
                    self._key(scope, identity), item.amount, item.get_expiry()
                )
            if self.ctx.cache.healthy:
                # limits' own script and keys, called directly (as in admit): one EVALSHA.
                keys = self._window_keys(self._key(scope, identity))
                try:
                    acquired = await self._redis.evalsha(
                        self._acquire_sha(), 2, *keys, item.amount, item.get_expiry(), 1
                    )
                except NoScriptError:  # Redis restarted and forgot the script: limits loads it
                    return await self.strategy.hit(item, self.namespace, scope, identity)
                return bool(acquired)
            return await self.strategy.hit(item, self.namespace, scope, identity)
        except Exception as exc:  # the store is down: serve rather than refuse everyone
            self._store_down(exc)
            return None

    def _store_down(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at > 30:
            log.warning("rate-limit store unavailable (%s); not limiting", exc)
            self._warned_at = time.monotonic()

    async def refuse(self, scope: str, identity: str, message: str | None = None) -> RateLimited:
        """The 429 for ``scope``/``identity`` with the seconds until the window lets one through."""
        item = self.limits[scope]
        try:
            if self._memory is not None:
                stats = self._sync_strategy.get_window_stats(item, self.namespace, scope, identity)
            else:
                stats = await self.strategy.get_window_stats(item, self.namespace, scope, identity)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:
            retry_after = item.get_expiry()
        metrics.RATE_LIMITED.labels(scope=scope).inc()
        return RateLimited(
            "RATE_LIMITED",
            message or f"Rate limit of {item} exceeded; retry in {retry_after} s",
            details={"limit": str(item), "retry_after_seconds": retry_after},
            retry_after=retry_after,
        )

    async def check(self, scope: str, identity: str) -> None:
        """Count one request of ``identity`` in ``scope``; raise :class:`RateLimited` over quota."""
        if await self._hit(self.limits[scope], scope, identity) is False:
            raise await self.refuse(scope, identity)

    async def exhausted(self, scope: str, identity: str) -> bool:
        """True when ``identity`` has no quota left in ``scope`` (nothing is counted)."""
        try:
            if self._memory is not None:
                return not self._sync_strategy.test(self.limits[scope], self.namespace, scope, identity)
            return not await self.strategy.test(self.limits[scope], self.namespace, scope, identity)
        except Exception as exc:
            self._store_down(exc)
            return False

    async def count(self, scope: str, identity: str) -> None:
        """Count one event (a failed login) against ``identity`` in ``scope``."""
        await self._hit(self.limits[scope], scope, identity)

    async def clear(self, scope: str, identity: str) -> None:
        """Forget ``identity``'s count in ``scope`` (a successful login clears its failures)."""
        try:
            if self._memory is not None:
                self._sync_strategy.clear(self.limits[scope], self.namespace, scope, identity)
                return
            await self.strategy.clear(self.limits[scope], self.namespace, scope, identity)
        except Exception as exc:
            self._store_down(exc)


def _sqlite_files(database_url: str) -> list[str]:
    """The SQLite database file and its WAL, or nothing for another database."""
    if not database_url.startswith("sqlite"):
        return []
    from sqlalchemy.engine import make_url

    path = make_url(database_url).database
    if not path or path == ":memory:":
        return []
    return [path, f"{path}-wal"]


_GATES: dict[int, tuple[weakref.ref[Any], AuthGate]] = {}


def gate_for(ctx: Any) -> AuthGate:
    """The :class:`AuthGate` of a process context (made on first use)."""
    entry = _GATES.get(id(ctx))
    if entry is not None and entry[0]() is ctx:
        return entry[1]
    gate = AuthGate(ctx)
    for key in [k for k, (ref, _) in _GATES.items() if ref() is None]:
        del _GATES[key]
    _GATES[id(ctx)] = (weakref.ref(ctx), gate)
    return gate
