"""The spans the wrappers record: one ``llm`` span per model call, one ``tool`` span per tool call.

A span is a plain dict in the shape ``POST /api/v2/rollouts`` takes (``SpanIn``); everything in
it is already a JSON-ready snapshot (:func:`agentlightning.sdk.serialize.to_jsonable`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agentlightning.sdk.rollout import new_id, utc_now
from agentlightning.sdk.serialize import to_jsonable


@dataclass
class SpanTimer:
    """When a span started: a wall-clock timestamp and a monotonic clock for its latency."""

    span_id: str = field(default_factory=new_id)
    started_at: str = field(default_factory=utc_now)
    started: float = field(default_factory=time.perf_counter)

    def elapsed_ms(self) -> float:
        """Milliseconds since the span started."""
        return round((time.perf_counter() - self.started) * 1000.0, 3)


def llm_span(
    timer: SpanTimer,
    *,
    name: str,
    messages: Any,
    response: Any,
    model: str | None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    tool_calls: Any = None,
    params: dict[str, Any] | None = None,
    error: BaseException | None = None,
    attributes: dict[str, Any] | None = None,
    parent_span_id: str | None = None,
) -> dict[str, Any]:
    """An ``llm`` span: the messages sent, the response (and its tool calls), model, tokens and
    latency; ``error`` marks a call that raised."""
    output: dict[str, Any] | None = None
    if error is None:
        output = {"content": to_jsonable(response)}
        if tool_calls:
            output["tool_calls"] = to_jsonable(tool_calls)
    span: dict[str, Any] = {
        "span_id": timer.span_id,
        "kind": "llm",
        "name": name[:255],
        "status": "error" if error is not None else "ok",
        "input": {"messages": to_jsonable(messages), **({"params": to_jsonable(params)} if params else {})},
        "output": output,
        "model": model[:255] if isinstance(model, str) else None,
        "prompt_tokens": prompt_tokens if isinstance(prompt_tokens, int) else None,
        "completion_tokens": completion_tokens if isinstance(completion_tokens, int) else None,
        "latency_ms": timer.elapsed_ms(),
        "started_at": timer.started_at,
        "ended_at": utc_now(),
        "attributes": to_jsonable(attributes or {}),
    }
    if error is not None:
        span["error"] = f"{type(error).__name__}: {error}"[:2000]
    if parent_span_id is not None:
        span["parent_span_id"] = parent_span_id
    return span


def tool_span(
    timer: SpanTimer,
    *,
    name: str,
    input: Any,
    output: Any = None,
    error: BaseException | None = None,
    parent_span_id: str | None = None,
) -> dict[str, Any]:
    """A ``tool`` span: the tool's name, its input and output (or error), and latency."""
    span: dict[str, Any] = {
        "span_id": timer.span_id,
        "kind": "tool",
        "name": name[:255],
        "status": "error" if error is not None else "ok",
        "input": to_jsonable(input),
        "output": to_jsonable(output) if error is None else None,
        "latency_ms": timer.elapsed_ms(),
        "started_at": timer.started_at,
        "ended_at": utc_now(),
        "attributes": {},
    }
    if error is not None:
        span["error"] = f"{type(error).__name__}: {error}"[:2000]
    if parent_span_id is not None:
        span["parent_span_id"] = parent_span_id
    return span
