"""Forwarding to OpenAI-compatible upstreams (vLLM, Ollama, OpenAI, LiteLLM, ...).

One pooled ``aiohttp`` session per process serves every upstream (keep-alive connections, no
per-call client). A reply is passed on as the upstream's bytes; for streams each server-sent
event is passed on unchanged while its JSON is read for the reply's text, tool calls and usage
(:class:`StreamAccumulator`), which the gateway records and counts against budgets.

Upstream failures become :class:`~agentlightning.errors.UpstreamFailed` carrying the upstream's
status and its OpenAI error object (502 when it cannot be reached, 504 when it is too slow).
The platform's own credentials are never forwarded: an upstream receives its configured key only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from agentlightning.errors import UpstreamFailed
from agentlightning.gateway.registry import ModelRoute

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


def _error_of(status: int, body: bytes) -> UpstreamFailed:
    """The error an upstream's failed reply becomes (its OpenAI error object kept when present)."""
    payload: dict[str, Any] = {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            payload = error
        elif isinstance(error, str):
            payload = {"message": error}
        elif isinstance(data.get("message"), str):
            payload = {"message": data["message"]}
    message = str(payload.get("message") or body[:300].decode("utf-8", "replace") or f"upstream status {status}")
    return UpstreamFailed(f"Upstream error: {message}", upstream_status=status, payload=payload)


class UpstreamClient:
    """The process's pooled HTTP client to every OpenAI-compatible upstream."""

    def __init__(self, *, connections: int = 1000) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)
        return self._session

    @staticmethod
    def _headers(route: ModelRoute) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if route.api_key:
            headers["Authorization"] = f"Bearer {route.api_key}"
        return headers

    async def complete(self, route: ModelRoute, body: bytes, timeout_s: float) -> bytes:
        """POST a non-streamed request; the reply's bytes (``UpstreamFailed`` on any failure)."""
        try:
            async with self._client().post(
                route.url, data=body, headers=self._headers(route), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                payload = await response.content.read(MAX_REPLY_BYTES)
                if response.status >= 400:
                    raise _error_of(response.status, payload)
                return payload
        except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(route, exc, timeout_s) from exc

    async def stream(self, route: ModelRoute, body: bytes, timeout_s: float) -> AsyncIterator[bytes]:
        """Open a streamed request; raises ``UpstreamFailed`` before the first chunk when the
        upstream refuses, then yields its bytes as they arrive (``timeout_s`` between chunks)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        try:
            response = await self._client().post(route.url, data=body, headers=self._headers(route), timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(route, exc, timeout_s) from exc
        if response.status >= 400:
            try:
                payload = await response.content.read(MAX_REPLY_BYTES)
            finally:
                response.release()
            raise _error_of(response.status, payload)
        return _chunks(response, route, timeout_s)

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _failed(route: ModelRoute, exc: BaseException, timeout_s: float, *, mid_stream: bool = False) -> UpstreamFailed:
    """The ``UpstreamFailed`` of a timeout (504) or a connection error (502) talking to ``route``,
    before the reply or ``mid_stream``."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        late = f"stalled for {timeout_s:g} s mid-stream" if mid_stream else f"did not answer within {timeout_s:g} s"
        return UpstreamFailed(f"The upstream for '{route.model}' {late}", upstream_status=504)
    broken = "broke off the stream" if mid_stream else "could not be reached"
    return UpstreamFailed(f"The upstream for '{route.model}' {broken}: {type(exc).__name__}", upstream_status=502)


async def _chunks(response: aiohttp.ClientResponse, route: ModelRoute, timeout_s: float) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
        raise _failed(route, exc, timeout_s, mid_stream=True) from exc
    finally:
        response.release()
