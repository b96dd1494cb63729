"""Provider for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM, ...).

Native tool calling is used when the endpoint accepts the ``tools`` parameter; an endpoint that
rejects it is remembered and then spoken to with the text tool-call protocol instead. The few
fields we use are read from the reply's JSON (no pydantic model of the whole response).

Two transports, one behaviour (timeouts; retries with exponential backoff and jitter on
connection errors, timeouts, 408, 409, 429 and 5xx, honouring the upstream's ``Retry-After``):

* the platform's own upstreams go through the pooled ``aiohttp`` client the gateway forwards
  with (:mod:`agentlightning.agents.llm.upstream_http`), retried with ``tenacity``. Against a
  fast endpoint the ``openai`` SDK's request building and transport cost about 0.3 ms of CPU per
  call, four times the call itself: a worker's largest cost per task;
* an agent's own upstream (every connection checked against the egress rules, an ``httpx``
  transport) and any upstream when the environment sets a proxy (``aiohttp`` would ignore it),
  or when ``LLM_HTTP_CLIENT=httpx``, go through the official ``openai`` client
  (``AsyncOpenAI.post`` with ``cast_to`` the raw ``httpx.Response``) and its own retries.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

import httpx
import openai
import orjson
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from agentlightning.agents.llm.base import (
    LLMError,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ToolCall,
    Usage,
)
from agentlightning.agents.llm.text_tools import parse_tool_calls, to_text_protocol
from agentlightning.agents.llm.upstream_http import UpstreamClient
from agentlightning.agents.tools.egress import EgressPolicy, egress_client
from agentlightning.errors import UpstreamFailed

log = logging.getLogger(__name__)

#: Statuses worth another try (as the ``openai`` SDK retries): timeouts, conflicts, rate limits,
#: server errors; 502 and 504 are also what an unreachable or silent upstream becomes.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
#: Backoff between tries when the upstream does not say how long to wait (seconds).
BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, UpstreamFailed) and (
        error.upstream_status in RETRYABLE_STATUSES or error.upstream_status >= 500
    )


def _wait(state: RetryCallState) -> float:
    """The upstream's ``Retry-After`` when it sent one, else the exponential backoff."""
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, UpstreamFailed) and error.retry_after is not None:
        return float(error.retry_after)
    return float(BACKOFF(state))


def _rejects_tools(error: Exception) -> bool:
    """Whether an endpoint refused the request because of its ``tools`` (a 400 that says so)."""
    refused = isinstance(error, openai.BadRequestError) or (
        isinstance(error, UpstreamFailed) and error.upstream_status == 400
    )
    return refused and "tool" in str(error).lower()


class OpenAICompatProvider(LLMProvider):
    """Chat completions against ``base_url`` (the pooled client, or ``openai.AsyncOpenAI``)."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        default_model: str,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        native_tools: bool | None = None,
        egress: EgressPolicy | None = None,
        http_client: str = "auto",
        upstreams: UpstreamClient | None = None,
    ) -> None:
        self.default_model = default_model
        #: None = try native tool calling and fall back on rejection
        self.native_tools = native_tools
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._api_key = api_key
        base = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self._url = f"{base.rstrip('/')}/chat/completions"
        #: The pooled client (the platform's upstreams), or None when the SDK's client is used.
        self._upstreams: UpstreamClient | None = None
        self._owns_upstreams = False
        self._client: AsyncOpenAI | None = None
        if egress is None and _pooled(http_client):
            self._upstreams = upstreams or UpstreamClient()
            self._owns_upstreams = upstreams is None
        else:
            # An agent's own upstream: every connection (and redirect) passes the egress rules and
            # goes to the address that was checked; no proxy from the environment.
            self._client = AsyncOpenAI(
                base_url=base_url,
                api_key=api_key or "not-needed",
                timeout=timeout_s,
                max_retries=max_retries,
                # the egress-checked httpx client (the SDK types its own vendored httpx)
                http_client=egress_client(egress, timeout=timeout_s) if egress is not None else None,  # type: ignore[arg-type]
            )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one completion, natively or with the text tool protocol."""
        model = request.model or self.default_model
        use_native = bool(request.tools) and self.native_tools is not False
        try:
            if use_native:
                try:
                    return await self._native(request, model)
                except (openai.BadRequestError, UpstreamFailed) as exc:
                    if self.native_tools is True or not _rejects_tools(exc):
                        raise
                    log.info("endpoint rejected native tools for %s; using text protocol", model)
                    self.native_tools = False
            return await self._text(request, model)
        except openai.OpenAIError as exc:
            raise LLMError(f"{type(exc).__name__}: {exc}") from exc
        except UpstreamFailed as exc:
            raise LLMError(f"{exc.message} (status {exc.upstream_status})") from exc

    async def _native(self, request: LLMRequest, model: str) -> LLMResponse:
        body = {
            "model": model,
            "messages": [m.to_openai() for m in request.messages],
            "tools": [t.to_openai() for t in request.tools],
            "tool_choice": request.tool_choice,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        return await self._chat(body, model, None)

    async def _text(self, request: LLMRequest, model: str) -> LLMResponse:
        body = {
            "model": model,
            "messages": to_text_protocol(request.messages, request.tools),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        return await self._chat(body, model, {t.name for t in request.tools} if request.tools else None)

    async def _chat(self, body: dict[str, Any], model: str, text_tools: set[str] | None) -> LLMResponse:
        """POST ``/chat/completions`` through the SDK and read the first choice.

        ``text_tools``: the tool names to parse from the text (text protocol); None for native calls.
        """
        try:
            data = orjson.loads(await self._post(body, model))
        except orjson.JSONDecodeError as exc:
            raise LLMError(f"endpoint returned invalid JSON: {exc}") from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise LLMError("endpoint returned no choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            message = {}
        text = message.get("content")
        text = text if isinstance(text, str) else ""
        calls: list[ToolCall] = []
        if text_tools is not None:
            content, calls = parse_tool_calls(text, text_tools) if text_tools else (text, [])
        else:
            content = text
            for tc in message.get("tool_calls") or []:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if not isinstance(fn, dict):
                    continue
                calls.append(_tool_call(str(tc.get("id") or ""), str(fn.get("name") or ""), fn.get("arguments")))
        returned_model = data.get("model")
        finish_reason = choice.get("finish_reason")
        return LLMResponse(
            content=content,
            tool_calls=calls,
            usage=_usage(data.get("usage")),
            model=returned_model if isinstance(returned_model, str) and returned_model else model,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            provider=self.name,
        )

    async def _post(self, body: dict[str, Any], model: str) -> bytes:
        """POST ``body`` to ``/chat/completions``; the reply's bytes after any retries."""
        if self._client is not None:
            raw = await self._client.post("/chat/completions", body=body, cast_to=httpx.Response)
            return raw.content
        assert self._upstreams is not None
        payload = orjson.dumps(body)
        try:  # the first try runs without the retry machinery (about 20 us a call)
            return await self._upstreams.complete(self._url, self._api_key, payload, self.timeout_s, model=model)
        except UpstreamFailed as error:
            if not _retryable(error) or self.max_retries <= 0:
                raise
            first: UpstreamFailed | None = error
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                if first is not None:  # replayed, so that tenacity counts it and waits as it asks
                    failed, first = first, None
                    raise failed
                return await self._upstreams.complete(self._url, self._api_key, payload, self.timeout_s, model=model)
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the underlying HTTP client (a shared pooled client is closed by its owner)."""
        if self._client is not None:
            await self._client.close()
        if self._upstreams is not None and self._owns_upstreams:
            await self._upstreams.close()


def _pooled(choice: str) -> bool:
    """Whether a platform upstream goes through the pooled ``aiohttp`` client: for "aiohttp", and
    for "auto" when the environment sets no proxy (aiohttp would ignore it)."""
    return choice == "aiohttp" or (choice == "auto" and not urllib.request.getproxies())


def _tool_call(call_id: str, name: str, arguments: Any) -> ToolCall:
    if isinstance(arguments, dict):  # some servers send the object itself
        return ToolCall(id=call_id, name=name, arguments=arguments)
    raw = arguments if isinstance(arguments, str) and arguments else "{}"
    try:
        parsed: Any = json.loads(raw)
    except json.JSONDecodeError:
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=raw)
    if not isinstance(parsed, dict):
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=raw)
    return ToolCall(id=call_id, name=name, arguments=parsed)


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    try:
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (TypeError, ValueError):
        return Usage()
