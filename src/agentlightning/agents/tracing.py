"""Trace spans of agent runs: the run itself, every LLM call and every tool call.

A :class:`TraceRecorder` collects spans in memory during one run attempt and writes them in a
single insert when the attempt ends (completed or failed), so tracing costs one round trip per
task.  The RL package reads ``trace_spans`` to build training data.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from agentlightning.storage.db import Database
from agentlightning.storage.models import TraceSpan
from agentlightning.storage.types import utcnow

MAX_FIELD_CHARS = 20_000


def _clip(value: Any) -> Any:
    """Keep span payloads bounded (long strings are cut, structure is kept)."""
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD_CHARS else value[:MAX_FIELD_CHARS] + "...(truncated)"
    if isinstance(value, dict):
        return {str(k): _clip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clip(v) for v in value]
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return _clip(str(value))


@dataclass
class Span:
    """One recorded step; finish it with :meth:`end`."""

    recorder: TraceRecorder
    kind: str
    name: str
    parent_span_id: str | None
    input: Any = None
    span_id: str = field(default_factory=lambda: uuid.uuid4().hex[:32])
    started_at: datetime = field(default_factory=utcnow)
    _t0: float = field(default_factory=time.perf_counter)
    output: Any = None
    status: str = "ok"
    error: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def end(
        self,
        output: Any = None,
        *,
        error: str | None = None,
        model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        **attributes: Any,
    ) -> Span:
        """Close the span with its output or error and usage."""
        self.latency_ms = (time.perf_counter() - self._t0) * 1000
        self.output = output
        if error is not None:
            self.status, self.error = "error", error
        self.model = model or self.model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.attributes.update(attributes)
        return self

    def row(
        self, trace_id: str, task_id: int | None, agent_id: int | None, rollout_id: str | None = None
    ) -> dict[str, Any]:
        """Column values for ``trace_spans``."""
        latency = self.latency_ms if self.latency_ms is not None else (time.perf_counter() - self._t0) * 1000
        return {
            "trace_id": trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "task_id": task_id,
            "agent_id": agent_id,
            "kind": self.kind,
            "name": self.name[:255],
            "status": self.status,
            "input": _clip(self.input),
            "output": _clip(self.output),
            "error": self.error,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": latency,
            "attributes": _clip(self.attributes),
            "started_at": self.started_at,
            "ended_at": self.started_at + timedelta(milliseconds=latency),
            "rollout_id": rollout_id,
        }


class TraceRecorder:
    """Collects the spans of one task attempt; :meth:`flush` persists them.

    ``rollout_id`` is the rollout the spans belong to (a task's is ``task-<id>``).
    """

    def __init__(
        self,
        *,
        task_id: int | None,
        agent_id: int | None,
        trace_id: str | None = None,
        rollout_id: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.agent_id = agent_id
        self.rollout_id = rollout_id
        self.trace_id = trace_id or uuid.uuid4().hex
        self.spans: list[Span] = []
        self.root: Span | None = None

    def start(self, kind: str, name: str, input: Any = None, parent: Span | None = None) -> Span:
        """Open a span (the first one opened becomes the root)."""
        parent_id = parent.span_id if parent else (self.root.span_id if self.root else None)
        span = Span(self, kind, name, parent_id, input)
        if self.root is None:
            self.root = span
        self.spans.append(span)
        return span

    def rows(self) -> list[dict[str, Any]]:
        """All spans as ``trace_spans`` rows."""
        return [s.row(self.trace_id, self.task_id, self.agent_id, self.rollout_id) for s in self.spans]

    async def flush(self, db: Database) -> int:
        """Insert the collected spans (once) and return how many were written."""
        rows = self.rows()
        if not rows:
            return 0
        async with db.session() as s:
            await s.execute(insert(TraceSpan), rows)
            await s.commit()
        self.spans.clear()
        return len(rows)


async def spans_for_task(db: Database, task_id: int) -> list[dict[str, Any]]:
    """Every span recorded for a task (all attempts), in start order."""
    from sqlalchemy import select

    from agentlightning.storage.types import as_utc

    async with db.session() as s:
        rows = (
            (await s.execute(select(TraceSpan).where(TraceSpan.task_id == task_id).order_by(TraceSpan.id)))
            .scalars()
            .all()
        )
    return [
        {
            "trace_id": r.trace_id,
            "span_id": r.span_id,
            "parent_span_id": r.parent_span_id,
            "kind": r.kind,
            "name": r.name,
            "status": r.status,
            "input": r.input,
            "output": r.output,
            "error": r.error,
            "model": r.model,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "latency_ms": r.latency_ms,
            "attributes": r.attributes,
            "started_at": as_utc(r.started_at),
            "ended_at": as_utc(r.ended_at),
        }
        for r in rows
    ]
