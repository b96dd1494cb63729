"""The process's pooled HTTP client to OpenAI-compatible upstreams (vLLM, Ollama, OpenAI, LiteLLM, ...).

One ``aiohttp`` session per owner serves every upstream (keep-alive connections, no per-call
client). The gateway forwards its callers' requests through it, and the agent runtime sends its
own calls to the platform's upstreams through it too, so the platform talks to an upstream one
way. A reply is returned as the upstream's bytes; streams are handed on chunk by chunk.

Upstream failures become :class:`~agentlightning.errors.UpstreamFailed` carrying the upstream's
status, its OpenAI error object and any ``Retry-After`` it sent (502 when it cannot be reached,
504 when it is too slow). The platform's own credentials are never sent: an upstream receives
the key it was given here only.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from agentlightning.errors import UpstreamFailed

#: Largest non-streamed upstream reply read into memory.
MAX_REPLY_BYTES = 64 * 1024 * 1024
#: The longest ``Retry-After`` an upstream may ask of us (seconds).
MAX_RETRY_AFTER_S = 60.0


def error_of(status: int, body: bytes, retry_after: str | None = None) -> UpstreamFailed:
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
    return UpstreamFailed(
        f"Upstream error: {message}", upstream_status=status, payload=payload, retry_after=_seconds(retry_after)
    )


def _seconds(retry_after: str | None) -> int | None:
    """A ``Retry-After`` header given in seconds, within :data:`MAX_RETRY_AFTER_S` (dates are ignored)."""
    if not retry_after:
        return None
    try:
        seconds = math.ceil(float(retry_after))
    except (ValueError, OverflowError):
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else None


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class UpstreamClient:
    """Pooled HTTP client to every OpenAI-compatible upstream of one owner (gateway or runtime)."""

    def __init__(self, *, connections: int = 1000) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)
        return self._session

    async def complete(self, url: str, api_key: str | None, body: bytes, timeout_s: float, *, model: str) -> bytes:
        """POST a non-streamed request to ``url``; the reply's bytes (``UpstreamFailed`` on any
        failure; ``model`` names the upstream in its message)."""
        try:
            async with self._client().post(
                url, data=body, headers=_headers(api_key), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                payload = await response.content.read(MAX_REPLY_BYTES)
                if response.status >= 400:
                    raise error_of(response.status, payload, response.headers.get("Retry-After"))
                return payload
        except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(model, exc, timeout_s) from exc

    async def stream(
        self, url: str, api_key: str | None, body: bytes, timeout_s: float, *, model: str
    ) -> AsyncIterator[bytes]:
        """Open a streamed request; raises ``UpstreamFailed`` before the first chunk when the
        upstream refuses, then yields its bytes as they arrive (``timeout_s`` between chunks)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        try:
            response = await self._client().post(url, data=body, headers=_headers(api_key), timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(model, exc, timeout_s) from exc
        if response.status >= 400:
            try:
                payload = await response.content.read(MAX_REPLY_BYTES)
            finally:
                response.release()
            raise error_of(response.status, payload, response.headers.get("Retry-After"))
        return _chunks(response, model, timeout_s)

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _failed(model: str, exc: BaseException, timeout_s: float, *, mid_stream: bool = False) -> UpstreamFailed:
    """The ``UpstreamFailed`` of a timeout (504) or a connection error (502) talking to the
    upstream of ``model``, before the reply or ``mid_stream``."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        late = f"stalled for {timeout_s:g} s mid-stream" if mid_stream else f"did not answer within {timeout_s:g} s"
        return UpstreamFailed(f"The upstream for '{model}' {late}", upstream_status=504)
    broken = "broke off the stream" if mid_stream else "could not be reached"
    return UpstreamFailed(f"The upstream for '{model}' {broken}: {type(exc).__name__}", upstream_status=502)


async def _chunks(response: aiohttp.ClientResponse, model: str, timeout_s: float) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
        raise _failed(model, exc, timeout_s, mid_stream=True) from exc
    finally:
        response.release()
