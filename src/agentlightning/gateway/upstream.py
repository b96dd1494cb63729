"""Reading what OpenAI-compatible upstreams answer the gateway (vLLM, Ollama, OpenAI, LiteLLM, ...).

The bytes travel through the pooled client of :mod:`agentlightning.agents.llm.upstream_http`. A
reply is passed on as the upstream's bytes; for streams each server-sent event is passed on
unchanged while its JSON is read for the reply's text, tool calls and usage
(:class:`StreamAccumulator`), which the gateway records and counts against budgets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Largest non-streamed upstream reply read into memory.
MAX_REPLY_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Completion:
    """What the gateway learned of one reply: text, tool calls, finish reason, model and usage."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_seen: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def message(self) -> dict[str, Any]:
        """The assistant message of the reply, in OpenAI's shape."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg

    def take_usage(self, usage: Any) -> None:
        """Read an OpenAI ``usage`` object (ignored when malformed)."""
        if not isinstance(usage, dict):
            return
        try:
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            self.usage_seen = True
        except (TypeError, ValueError):
            return


def completion_from_json(data: Any) -> Completion:
    """The :class:`Completion` of a ``chat.completion`` object (first choice)."""
    result = Completion()
    if not isinstance(data, dict):
        return result
    model = data.get("model")
    result.model = model if isinstance(model, str) else None
    result.take_usage(data.get("usage"))
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        found = choice.get("message")
        message: dict[str, Any] = found if isinstance(found, dict) else {}
        content = message.get("content")
        result.content = content if isinstance(content, str) else ""
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            result.tool_calls = [c for c in calls if isinstance(c, dict)]
        finish = choice.get("finish_reason")
        result.finish_reason = finish if isinstance(finish, str) else None
    return result


class StreamAccumulator:
    """Builds the :class:`Completion` of a stream from its ``chat.completion.chunk`` objects."""

    def __init__(self) -> None:
        self.completion = Completion()
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}

    def feed(self, chunk: Any) -> None:
        """Take one parsed chunk."""
        if not isinstance(chunk, dict):
            return
        completion = self.completion
        if completion.model is None and isinstance(chunk.get("model"), str):
            completion.model = chunk["model"]
        if chunk.get("usage"):
            completion.take_usage(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                piece = delta.get("content")
                if isinstance(piece, str):
                    self._parts.append(piece)
                for call in delta.get("tool_calls") or ():
                    if isinstance(call, dict):
                        self._call_delta(call)
            finish = choice.get("finish_reason")
            if isinstance(finish, str):
                completion.finish_reason = finish

    def _call_delta(self, call: dict[str, Any]) -> None:
        index = call.get("index", 0) if isinstance(call.get("index", 0), int) else 0
        entry = self._calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if isinstance(call.get("id"), str):
            entry["id"] = call["id"]
        fn = call.get("function")
        if isinstance(fn, dict):
            if isinstance(fn.get("name"), str):
                entry["function"]["name"] += fn["name"]
            if isinstance(fn.get("arguments"), str):
                entry["function"]["arguments"] += fn["arguments"]

    def result(self) -> Completion:
        """The reply as accumulated so far."""
        self.completion.content = "".join(self._parts)
        self.completion.tool_calls = [self._calls[i] for i in sorted(self._calls)]
        return self.completion


class SSEReader:
    """Splits a byte stream into server-sent events: ``(raw event bytes, data or None)``."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes | None]]:
        """The complete events in ``chunk`` (with what came before); the rest is kept."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[tuple[bytes, bytes | None]] = []
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            raw, buffer = buffer[:end], buffer[end + 2 :]
            if raw:
                events.append((raw, _data_of(raw)))
        self._buffer = buffer
        return events

    def rest(self) -> list[tuple[bytes, bytes | None]]:
        """An unterminated last event at the end of the stream."""
        raw, self._buffer = self._buffer.strip(b"\n"), b""
        return [(raw, _data_of(raw))] if raw else []


def _data_of(raw: bytes) -> bytes | None:
    if raw.startswith(b"data:") and b"\n" not in raw:  # the common case: one data line
        return raw[5:].lstrip(b" ")
    lines = [line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
