"""The background sender of rollouts, spans and rewards.

Wrapped calls never talk to the platform themselves: they hand a small dict to
:meth:`Recorder.enqueue` (a lock held for microseconds) and return. One daemon thread per
recorder takes what is queued, merges the updates of one rollout, and posts them in batches to
``POST /api/v2/rollouts``. When the platform is down, slow or hanging, only that thread waits:

* the queue is bounded (``max_queue`` updates); when it is full the oldest update is dropped and
  counted (``stats()["dropped"]``), so memory stays bounded whatever happens upstream;
* a batch that fails for a transient reason (connection refused, timeout, 5xx, 429) is retried
  with exponential backoff and jitter, up to ``max_attempts`` times, then dropped and counted;
* a batch the platform refuses (another 4xx) is split in halves to isolate the bad rollout, which
  alone is dropped (``stats()["rejected"]``);
* :meth:`Recorder.flush` waits, up to a timeout, until everything queued so far is delivered (or
  given up), and an ``atexit`` hook flushes once more when the interpreter exits.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("agentlightning.sdk")

#: The platform's limits on one ingest request (``POST /api/v2/rollouts``).
MAX_ROLLOUTS_PER_BATCH = 100
MAX_SPANS_PER_ROLLOUT = 200

#: Refusals that may come from one rollout of a batch (split the batch to find it): a bad or too
#: large body, an unknown agent (404), a rollout id someone else owns (409).
SPLITTABLE_STATUSES = frozenset({400, 404, 409, 413, 422})

#: What a delivery attempt may answer: ``None`` (delivered), or an exception.
SendFn = Callable[[list[dict[str, Any]]], None]


class DeliveryError(Exception):
    """A batch could not be delivered; ``transient`` says whether retrying may help."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


def merge_updates(updates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge queued rollout updates into one entry per rollout id, in first-seen order: spans and
    rewards are concatenated, other fields keep the latest non-null value."""
    merged: dict[str, dict[str, Any]] = {}
    for update in updates:
        rollout_id = update["id"]
        entry = merged.get(rollout_id)
        if entry is None:
            entry = merged[rollout_id] = {"id": rollout_id, "spans": [], "rewards": []}
        for key, value in update.items():
            if key in ("spans", "rewards"):
                entry[key].extend(value)
            elif value is not None and key != "id":
                if key == "metadata" and isinstance(entry.get("metadata"), dict):
                    entry["metadata"] = {**entry["metadata"], **value}
                else:
                    entry[key] = value
    return list(merged.values())


class Recorder:
    """A bounded queue of rollout updates drained by one daemon thread (see the module docstring).

    ``send`` posts one batch (a list of rollout entries) and raises :class:`DeliveryError` when it
    fails; it runs only on the recorder's thread.
    """

    def __init__(
        self,
        send: SendFn,
        *,
        max_queue: int = 10_000,
        batch_interval: float = 0.2,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        atexit_timeout: float = 5.0,
        name: str = "agentlightning-recorder",
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._send = send
        self.max_queue = max_queue
        self.batch_interval = batch_interval
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.atexit_timeout = atexit_timeout
        self._name = name
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._flush_waiters = 0
        self._stats = {"enqueued": 0, "sent": 0, "dropped": 0, "rejected": 0, "failed_attempts": 0, "batches": 0}
        self._closed = False
        self._wake_at = max(1, max_queue // 2)
        _live_recorders.add(self)

    # --- the caller's side ---------------------------------------------------------------------

    def enqueue(self, update: dict[str, Any]) -> None:
        """Queue one rollout update (``{"id": ..., "spans": [...], ...}``) without blocking; when
        the queue is full the oldest update is dropped and counted."""
        with self._cond:
            if self._closed:
                self._stats["dropped"] += 1
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self._stats["dropped"] += 1
            was_empty = not self._queue
            self._queue.append(update)
            self._stats["enqueued"] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            # Wake the thread only when it may be idle (the queue was empty) or the batch is big:
            # waking it on every call would make each call pay a thread switch.
            if was_empty or len(self._queue) == self._wake_at:
                self._cond.notify_all()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued before this call is delivered or given up; ``True`` when
        the queue drained within ``timeout`` seconds (``None``: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    if self._thread is None or not self._thread.is_alive():
                        return not self._queue and not self._in_flight
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining if remaining is not None else 1.0)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush (up to ``timeout``), then stop the thread; later updates are dropped."""
        drained = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        return drained

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its queue is the parent's to send,
        so start afresh (a new thread starts on the next update)."""
        self._cond = threading.Condition(threading.Lock())
        self._queue = collections.deque()
        self._thread = None
        self._in_flight = 0
        self._flush_waiters = 0
        self._stop = threading.Event()

    def stats(self) -> dict[str, int]:
        """Counters: ``enqueued``, ``sent`` (rollout entries delivered), ``dropped`` (queue full,
        retries exhausted, or after close), ``rejected`` (refused by the platform),
        ``failed_attempts``, ``batches``, and ``queued`` now."""
        with self._cond:
            return {**self._stats, "queued": len(self._queue)}

    # --- the recorder's thread -------------------------------------------------------------------

    def _take_batch(self) -> list[dict[str, Any]]:
        """Pop queued updates while they fit one request (called with the lock held)."""
        taken: list[dict[str, Any]] = []
        span_counts: dict[str, int] = {}
        while self._queue:
            update = self._queue[0]
            rollout_id = update["id"]
            spans = len(update.get("spans") or ())
            if rollout_id not in span_counts and len(span_counts) >= MAX_ROLLOUTS_PER_BATCH:
                break
            if taken and span_counts.get(rollout_id, 0) + spans > MAX_SPANS_PER_ROLLOUT:
                break
            span_counts[rollout_id] = span_counts.get(rollout_id, 0) + spans
            taken.append(self._queue.popleft())
        return taken

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                # Let a burst of calls accumulate into one request, unless someone is flushing.
                deadline = time.monotonic() + self.batch_interval
                while (
                    len(self._queue) < self._wake_at
                    and not self._flush_waiters
                    and not self._stop.is_set()
                    and (remaining := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(remaining)
                updates = self._take_batch()
                self._in_flight = len(updates)
            try:
                if updates:
                    self._deliver(merge_updates(updates))
            except Exception:  # the thread must survive anything a send does
                logger.exception("agentlightning recorder: unexpected error while sending")
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send ``batch``, retrying transient failures and isolating refused rollouts."""
        attempt = 0
        while True:
            try:
                self._send(batch)
            except DeliveryError as exc:
                if not exc.transient:
                    self._refused(batch, exc)
                    return
                error: Exception = exc
            except Exception as exc:  # a bug in send: treat as transient, bounded by max_attempts
                error = exc
            else:
                with self._cond:
                    self._stats["sent"] += len(batch)
                    self._stats["batches"] += 1
                return
            attempt += 1
            with self._cond:
                self._stats["failed_attempts"] += 1
            if attempt >= self.max_attempts or self._stop.is_set():
                logger.warning(
                    "agentlightning recorder: dropping %d rollout update(s) after %d attempts: %s",
                    len(batch),
                    attempt,
                    error,
                )
                with self._cond:
                    self._stats["dropped"] += len(batch)
                return
            delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
            if self._stop.wait(delay * random.uniform(0.5, 1.0)):
                with self._cond:
                    self._stats["dropped"] += len(batch)
                return

    def _refused(self, batch: list[dict[str, Any]], exc: DeliveryError) -> None:
        # A refused body may be one rollout's fault: split to isolate it. Other refusals (401,
        # 403) would refuse every half alike.
        if len(batch) > 1 and exc.status in SPLITTABLE_STATUSES:
            middle = len(batch) // 2
            self._deliver(batch[:middle])
            self._deliver(batch[middle:])
            return
        logger.warning(
            "agentlightning recorder: the platform refused %d rollout update(s) (%s): %s",
            len(batch),
            ", ".join(str(entry.get("id")) for entry in batch[:3]),
            exc,
        )
        with self._cond:
            self._stats["rejected"] += len(batch)


_live_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for recorder in list(_live_recorders):
        recorder._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    """Give every recorder a last chance to deliver what is queued (bounded by its timeout)."""
    for recorder in list(_live_recorders):
        try:
            recorder.flush(recorder.atexit_timeout)
        except Exception:  # never fail interpreter shutdown
            logger.debug("agentlightning recorder: flush at exit failed", exc_info=True)
