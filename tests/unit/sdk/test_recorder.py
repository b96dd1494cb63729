"""The background recorder: batching, merging, bounded memory, retries, refusals and flush."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agentlightning.sdk.recorder import DeliveryError, Recorder, merge_updates


class Sink:
    """A ``send`` function that stores batches, or fails as scripted."""

    def __init__(self, failures: list[DeliveryError] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.failures = list(failures or [])
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.calls += 1
        self.gate.wait(30)
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(batch)

    @property
    def ids(self) -> list[str]:
        return [entry["id"] for batch in self.batches for entry in batch]


def update(rollout_id: str, spans: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "id": rollout_id,
        "spans": [{"span_id": f"{rollout_id}-{i}"} for i in range(spans)],
        "rewards": [],
        **fields,
    }


def test_merge_updates_joins_one_rollouts_spans_and_keeps_the_latest_fields() -> None:
    merged = merge_updates(
        [
            update("a", status="running", metadata={"x": 1}),
            update("b"),
            {"id": "a", "spans": [], "rewards": [{"value": 1.0}], "status": "completed", "metadata": {"y": 2}},
        ]
    )
    assert [m["id"] for m in merged] == ["a", "b"]
    assert merged[0]["status"] == "completed"
    assert merged[0]["metadata"] == {"x": 1, "y": 2}
    assert len(merged[0]["spans"]) == 1 and merged[0]["rewards"] == [{"value": 1.0}]


def test_updates_are_sent_in_batches_within_the_platform_limits() -> None:
    sink = Sink()
    sink.gate.clear()  # hold the first send so the rest queue up
    recorder = Recorder(sink, batch_interval=0.0)
    recorder.enqueue(update("first"))
    for i in range(250):
        recorder.enqueue(update(f"r{i}"))
    for _ in range(150):  # one rollout with 150 x 2 spans: more than 200 in one request is split
        recorder.enqueue(update("big", spans=2))
    sink.gate.set()
    assert recorder.flush(30)
    assert all(len(batch) <= 100 for batch in sink.batches)
    assert all(len(entry["spans"]) <= 200 for batch in sink.batches for entry in batch)
    assert sum(len(e["spans"]) for b in sink.batches for e in b if e["id"] == "big") == 300
    assert recorder.stats()["dropped"] == 0


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    sink = Sink()
    sink.gate.clear()
    recorder = Recorder(sink, max_queue=50, batch_interval=0.0)
    recorder.enqueue(update("held"))
    deadline = time.monotonic() + 10
    while sink.calls == 0 and time.monotonic() < deadline:  # the thread took "held" and waits
        time.sleep(0.01)
    for i in range(10_000):
        recorder.enqueue(update(f"r{i}"))
    stats = recorder.stats()
    assert stats["queued"] == 50
    assert stats["dropped"] == 10_000 - 50
    sink.gate.set()
    assert recorder.flush(30)
    assert sink.ids[0] == "held"
    assert sink.ids[1:] == [f"r{i}" for i in range(10_000 - 50, 10_000)]


def test_transient_failures_are_retried_with_backoff() -> None:
    sink = Sink([DeliveryError("down", transient=True), DeliveryError("503", transient=True, status=503)])
    recorder = Recorder(sink, batch_interval=0.0, backoff_base=0.01)
    recorder.enqueue(update("a"))
    assert recorder.flush(30)
    assert sink.ids == ["a"]
    assert recorder.stats()["failed_attempts"] == 2


def test_a_batch_is_dropped_after_max_attempts() -> None:
    sink = Sink([DeliveryError("down", transient=True)] * 3)
    recorder = Recorder(sink, batch_interval=0.0, backoff_base=0.01, max_attempts=3)
    recorder.enqueue(update("a"))
    assert recorder.flush(30)
    assert sink.ids == []
    assert recorder.stats()["dropped"] == 1


def test_a_refused_batch_is_split_to_drop_only_the_bad_rollout() -> None:
    class Picky(Sink):
        def __call__(self, batch: list[dict[str, Any]]) -> None:
            if any(entry["id"] == "bad" for entry in batch):
                raise DeliveryError("422", transient=False, status=422)
            self.batches.append(batch)

    sink = Picky()
    recorder = Recorder(sink, batch_interval=0.5)
    for name in ("a", "b", "bad", "c", "d"):
        recorder.enqueue(update(name))
    assert recorder.flush(30)
    assert sorted(sink.ids) == ["a", "b", "c", "d"]
    assert recorder.stats()["rejected"] == 1


def test_flush_returns_false_when_the_platform_does_not_answer_in_time() -> None:
    sink = Sink()
    sink.gate.clear()
    recorder = Recorder(sink, batch_interval=0.0)
    recorder.enqueue(update("a"))
    started = time.monotonic()
    assert recorder.flush(0.2) is False
    assert time.monotonic() - started < 5
    sink.gate.set()
    assert recorder.flush(30)


def test_enqueue_never_waits_for_a_send_in_progress() -> None:
    sink = Sink()
    sink.gate.clear()
    recorder = Recorder(sink, batch_interval=0.0)
    recorder.enqueue(update("a"))
    started = time.perf_counter()
    for i in range(1000):
        recorder.enqueue(update(f"r{i}"))
    assert time.perf_counter() - started < 2.0
    sink.gate.set()
    assert recorder.flush(30)


def test_after_close_updates_are_dropped() -> None:
    sink = Sink()
    recorder = Recorder(sink)
    recorder.enqueue(update("a"))
    assert recorder.close(10)
    recorder.enqueue(update("late"))
    assert sink.ids == ["a"]
    assert recorder.stats()["dropped"] == 1


def test_max_queue_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Recorder(Sink(), max_queue=0)
