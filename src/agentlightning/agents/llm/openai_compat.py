"""Provider for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM, ...).

Uses the official ``openai`` async client with a request timeout and the SDK's
own retry/backoff.  Native tool calling is used when the endpoint accepts the
``tools`` parameter; an endpoint that rejects it is remembered and then spoken
to with the text tool-call protocol instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
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
    ) -> None:
        self.default_model = default_model
        #: None = try native tool calling and fall back on rejection
        self.native_tools = native_tools
        # An agent's own upstream: every connection (and redirect) passes the egress rules and
        # goes to the address that was checked; no proxy from the environment.
        http_client = egress_client(egress, timeout=timeout_s) if egress is not None else None
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client,  # type: ignore[arg-type]  # an httpx.AsyncClient, as the SDK expects
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
        resp = await self._client.chat.completions.create(
            model=model,
            messages=[m.to_openai() for m in request.messages],  # type: ignore[misc]
            tools=[t.to_openai() for t in request.tools],  # type: ignore[misc]
            tool_choice=request.tool_choice,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        if not resp.choices:
            raise LLMError("endpoint returned no choices")
        choice = resp.choices[0]
        calls: list[ToolCall] = []
        for tc in choice.message.tool_calls or []:
            fn = getattr(tc, "function", None)
            if fn is None:
                continue
            calls.append(_tool_call(tc.id, fn.name, fn.arguments))
        return LLMResponse(
            content=choice.message.content or "",
            tool_calls=calls,
            usage=_usage(resp.usage),
            model=resp.model or model,
            finish_reason=choice.finish_reason,
            provider=self.name,
        )

    async def _text(self, request: LLMRequest, model: str) -> LLMResponse:
        messages = to_text_protocol(request.messages, request.tools)
        resp = await self._client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        if not resp.choices:
            raise LLMError("endpoint returned no choices")
        choice = resp.choices[0]
        text = choice.message.content or ""
        content, calls = parse_tool_calls(text, {t.name for t in request.tools}) if request.tools else (text, [])
        return LLMResponse(
            content=content,
            tool_calls=calls,
            usage=_usage(resp.usage),
            model=resp.model or model,
            finish_reason=choice.finish_reason,
            provider=self.name,
        )

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._client.close()


def _tool_call(call_id: str, name: str, arguments: str | None) -> ToolCall:
    raw = arguments or "{}"
    try:
        parsed: Any = json.loads(raw)
    except json.JSONDecodeError:
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=raw)
    if not isinstance(parsed, dict):
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=raw)
    return ToolCall(id=call_id, name=name, arguments=parsed)


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )
