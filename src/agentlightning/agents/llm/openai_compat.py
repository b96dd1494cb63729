"""Provider for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM, ...).

Uses the official ``openai`` async client with a request timeout and the SDK's
own retry/backoff.  Native tool calling is used when the endpoint accepts the
``tools`` parameter; an endpoint that rejects it is remembered and then spoken
to with the text tool-call protocol instead.

The request goes through the SDK's transport (``AsyncOpenAI.post``: authentication, headers,
retries with backoff, timeouts, status errors as ``openai.APIStatusError``) with ``cast_to`` set
to the raw ``httpx.Response``.  That skips the two per-call costs we do not need: the SDK's
transformation of typed request parameters and the pydantic model of the whole response (the
bulk of a call's CPU against a fast endpoint); the few fields we use are read from the JSON.
Under the SDK, the platform's own upstreams use its aiohttp client (``openai.DefaultAioHttpClient``,
the ``openai[aiohttp]`` extra) when available: about a third less CPU per call than httpx.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import httpx
import openai
import orjson
from openai import AsyncOpenAI

from agentlightning.agents.llm.base import (
    LLMError,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ToolCall,
    Usage,
)
from agentlightning.agents.llm.text_tools import parse_tool_calls, to_text_protocol
from agentlightning.agents.tools.egress import EgressPolicy, egress_client

log = logging.getLogger(__name__)


class OpenAICompatProvider(LLMProvider):
    """Chat completions through ``openai.AsyncOpenAI`` against ``base_url``."""

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
    ) -> None:
        self.default_model = default_model
        #: None = try native tool calling and fall back on rejection
        self.native_tools = native_tools
        # An agent's own upstream: every connection (and redirect) passes the egress rules and
        # goes to the address that was checked; no proxy from the environment.
        client = egress_client(egress, timeout=timeout_s) if egress is not None else _transport(http_client)
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=client,  # type: ignore[arg-type]  # httpx or the SDK's aiohttp client
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one completion, natively or with the text tool protocol."""
        model = request.model or self.default_model
        use_native = bool(request.tools) and self.native_tools is not False
        try:
            if use_native:
                try:
                    return await self._native(request, model)
                except openai.BadRequestError as exc:
                    if self.native_tools is True or "tool" not in str(exc).lower():
                        raise
                    log.info("endpoint rejected native tools for %s; using text protocol", model)
                    self.native_tools = False
            return await self._text(request, model)
        except openai.OpenAIError as exc:
            raise LLMError(f"{type(exc).__name__}: {exc}") from exc

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
        raw = await self._client.post("/chat/completions", body=body, cast_to=httpx.Response)
        try:
            data = orjson.loads(raw.content)
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

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._client.close()


def _transport(choice: str) -> Any:
    """The SDK's HTTP client for a platform upstream: aiohttp for "aiohttp", and for "auto" when
    the extra is installed and the environment sets no proxy (aiohttp would ignore it); None (the
    SDK's httpx default) otherwise."""
    if choice == "httpx" or (choice == "auto" and urllib.request.getproxies()):
        return None
    try:
        import aiohttp  # noqa: F401 - the SDK's aiohttp client needs it
    except ImportError:
        if choice == "aiohttp":
            raise
        return None
    return openai.DefaultAioHttpClient()


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
