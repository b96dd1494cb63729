"""Recording ``/v1`` calls as rollouts and ``llm`` spans, off the response's critical path.

A call puts one :class:`CallRecord` on a bounded queue and returns; one task drains the queue in
batches (the first record of a batch waits ``GATEWAY_RECORD_INTERVAL_SECONDS`` for others, so a
busy gateway writes once for many calls): it charges each call's tokens to its key's budget and writes the spans through the
rollouts service (``RolloutService.ingest``, the one writer of rollouts and spans), grouped by
caller. A full queue drops its oldest record (counted in ``gateway_records_total{result=
"dropped"}``) rather than slow calls down; a failed write is logged and counted, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentlightning.auth.service import Principal
from agentlightning.core.context import AppContext
from agentlightning.observability import metrics
from agentlightning.rollouts.schemas import MAX_PAYLOAD_BYTES
from agentlightning.validation import JsonLimits, check_json, current_limits

log = logging.getLogger(__name__)

#: The rollouts contract's bounds of one ingest batch.
MAX_ROLLOUTS_PER_BATCH = 100
MAX_SPANS_PER_ROLLOUT = 200


@dataclass(slots=True)
class CallRecord:
    """One finished ``/v1`` call: who made it, its rollout, its span, and its tokens to charge."""

    actor: Principal
    rollout_id: str
    grouped: bool  # the caller named the rollout (X-Rollout-Id): more calls may join it
    agent_id: int | None
    span: dict[str, Any]
    rollout_input: Any = None
    rollout_output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    charge: Callable[[], Awaitable[None]] | None = None


def bounded(value: Any) -> Any:
    """``value`` when it fits what a span or rollout may hold (``MAX_PAYLOAD_BYTES``, the
    platform's nesting depth), else a truncated preview: a very long conversation is still
    recorded, as ``{"truncated": true, "size_bytes", "preview"}``."""
    if value is None:
        return None
    limits = JsonLimits(max_bytes=MAX_PAYLOAD_BYTES, max_depth=current_limits().max_depth)
    try:
        return check_json(value, limits)
    except ValueError:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode("utf-8", "replace")
        keep = max(256, MAX_PAYLOAD_BYTES // 2)
        return {"truncated": True, "size_bytes": len(text), "preview": text[:keep]}


class Recorder:
    """The bounded queue and its one draining task."""

    def __init__(self, ctx: AppContext, *, capacity: int, batch_size: int, linger_s: float = 0.0) -> None:
        self.ctx = ctx
        self.batch_size = batch_size
        #: How long the first record of a batch waits for others (one write for many calls).
        self.linger_s = linger_s
        self.queue: asyncio.Queue[CallRecord] = asyncio.Queue(maxsize=capacity)
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def put(self, record: CallRecord) -> None:
        """Queue a record (never waits: the oldest is dropped when full)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gateway-recorder")
        while True:
            try:
                self.queue.put_nowait(record)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.queue.task_done()
                    metrics.GATEWAY_RECORDS.labels(result="dropped").inc()

    async def flush(self) -> None:
        """Wait until every queued record is written."""
        if self._task is not None and not self._task.done():
            self._hurry.set()  # no lingering: write what is queued now
            try:
                await self.queue.join()
            finally:
                self._hurry.clear()

    async def close(self) -> None:
        """Write what is queued, then stop the task."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=10)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if self.linger_s > 0 and not self._hurry.is_set() and self.queue.qsize() < self.batch_size:
                with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), timeout=self.linger_s)
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._write(batch)
            except Exception:  # a bug or an outage must not stop recording
                log.exception("recording %d gateway call(s) failed", len(batch))
                metrics.GATEWAY_RECORDS.labels(result="failed").inc(len(batch))
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _write(self, batch: list[CallRecord]) -> None:
        for record in batch:
            if record.charge is not None:
                try:
                    await record.charge()
                except Exception:
                    log.exception("charging a gateway call's tokens failed")
        by_actor: dict[int, tuple[Principal, dict[str, dict[str, Any]]]] = {}
        for record in batch:
            _, rollouts = by_actor.setdefault(record.actor.user_id, (record.actor, {}))
            entry = rollouts.get(record.rollout_id)
            if entry is None:
                entry = rollouts[record.rollout_id] = {
                    "id": record.rollout_id,
                    "source": "gateway",
                    "agent_id": record.agent_id,
                    "metadata": record.metadata,
                    "spans": [],
                }
                if not record.grouped:
                    entry["status"] = "completed" if record.span.get("status") != "error" else "failed"
                    entry["input"] = bounded(record.rollout_input)
                    entry["output"] = bounded(record.rollout_output)
            span = record.span
            entry["spans"].append({**span, "input": bounded(span.get("input")), "output": bounded(span.get("output"))})
        for actor, rollouts in by_actor.values():
            await self._ingest(actor, list(rollouts.values()))

    async def _ingest(self, actor: Principal, rollouts: list[dict[str, Any]]) -> None:
        from agentlightning.rollouts.schemas import RolloutBatchIn
        from agentlightning.rollouts.service import RolloutService

        service = RolloutService(self.ctx)
        chunks: list[dict[str, Any]] = []
        for rollout in rollouts:
            spans = rollout["spans"]
            for start in range(0, len(spans), MAX_SPANS_PER_ROLLOUT):
                chunks.append({**rollout, "spans": spans[start : start + MAX_SPANS_PER_ROLLOUT]})
        for start in range(0, len(chunks), MAX_ROLLOUTS_PER_BATCH):
            part = chunks[start : start + MAX_ROLLOUTS_PER_BATCH]
            try:
                await service.ingest(RolloutBatchIn.model_validate({"rollouts": part}), actor=actor)
            except Exception as exc:
                # One refused rollout (another user's id, say) must not lose the others.
                if len(part) == 1:
                    log.warning("gateway rollout %s not recorded: %s", part[0]["id"], exc)
                    metrics.GATEWAY_RECORDS.labels(result="failed").inc(len(part[0]["spans"]))
                    continue
                for one in part:
                    try:
                        await service.ingest(RolloutBatchIn.model_validate({"rollouts": [one]}), actor=actor)
                    except Exception as inner:
                        log.warning("gateway rollout %s not recorded: %s", one["id"], inner)
                        metrics.GATEWAY_RECORDS.labels(result="failed").inc(len(one["spans"]))
                        continue
                    metrics.GATEWAY_RECORDS.labels(result="written").inc(len(one["spans"]))
                continue
            metrics.GATEWAY_RECORDS.labels(result="written").inc(sum(len(r["spans"]) for r in part))
