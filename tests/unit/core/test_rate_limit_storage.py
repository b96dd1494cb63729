"""The in-process rate-limit storage: ``limits``' sliding window, without a thread per hit."""

from __future__ import annotations

import threading
import time

from limits import parse
from limits.strategies import SlidingWindowCounterRateLimiter

from agentlightning.auth.gate import LoopMemoryStorage


def test_counts_and_refuses_like_limits() -> None:
    storage = LoopMemoryStorage()
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("3/minute")
    assert [limiter.hit(item, "ns", "user", "1") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "ns", "user", "2")  # another identity has its own quota
    stats = limiter.get_window_stats(item, "ns", "user", "1")
    assert stats.remaining == 0 and stats.reset_time > time.time()
    limiter.clear(item, "ns", "user", "1")
    assert limiter.hit(item, "ns", "user", "1")


def test_no_thread_started_per_hit() -> None:
    storage = LoopMemoryStorage()
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("1000000/minute")
    started = []
    original = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self)
        original(self)

    threading.Thread.start = spy  # type: ignore[method-assign]
    try:
        for i in range(200):
            assert limiter.hit(item, "ns", "user", str(i % 7))
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert started == []


def test_expired_counters_are_dropped_and_reclaimed() -> None:
    storage = LoopMemoryStorage()
    assert storage.incr("k", 60) == 1
    assert storage.incr("k", 60) == 2
    storage.expirations["k"] = time.time() - 1  # as if its window had passed
    assert storage.get("k") == 0  # expiry is exact, sweep or not
    storage.incr("old", 60)
    storage.expirations["old"] = time.time() - 1
    storage._next_sweep = 0.0  # the next update sweeps
    storage.incr("new", 60)
    assert "old" not in storage.storage and "old" not in storage.expirations
    assert storage.get("new") == 1
    assert storage.decr("new") == 0 and storage.decr("new") == 0


def test_sliding_window_matches_limits_step_for_step(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The inlined acquisition gives the stock storage's answers and counters on a fake clock,
    across window boundaries (the previous window's weight decays) and at the limit."""
    from limits.storage import MemoryStorage

    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    ours, stock = LoopMemoryStorage(), MemoryStorage()
    try:
        item = parse("5/10 seconds")
        limiters = [SlidingWindowCounterRateLimiter(s) for s in (ours, stock)]
        answers: list[tuple[bool, bool]] = []
        for step in range(120):
            clock[0] += 0.37 if step % 9 else 2.9
            pair = tuple(limiter.hit(item, "ns", "user", str(step % 2)) for limiter in limiters)
            answers.append(pair)  # type: ignore[arg-type]
            assert pair[0] == pair[1], step
            assert dict(ours.storage) == dict(stock.storage)
        assert any(a for a, _ in answers) and not all(a for a, _ in answers)
        for identity in ("0", "1"):
            assert limiters[0].get_window_stats(item, "ns", "user", identity) == limiters[1].get_window_stats(
                item, "ns", "user", identity
            )
    finally:
        stock.timer.cancel()
