"""The embedded local model behind ``/v1``: OpenAI's request and reply shapes around
:class:`~agentlightning.agents.llm.local.LocalLlamaProvider` (generation runs in its threads).

Streams send the text as it is generated; a reply that may call tools is sent when complete
(its tool-call markup is parsed first), as chunks of the same shape OpenAI sends.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from agentlightning.agents.llm.base import ChatMessage, LLMError, LLMProvider, LLMRequest, ToolCall, ToolSpec
from agentlightning.errors import UpstreamFailed
from agentlightning.gateway.upstream import Completion


def _text(content: Any) -> str:
    """A message's content as text (OpenAI's list of parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tool_call(call: dict[str, Any]) -> ToolCall:
    found = call.get("function")
    fn: dict[str, Any] = found if isinstance(found, dict) else {}
    raw = fn.get("arguments")
    try:
        args = raw if isinstance(raw, dict) else json.loads(raw or "{}")
    except (TypeError, ValueError):
        args = None
    if isinstance(args, dict):
        return ToolCall(id=str(call.get("id") or ""), name=str(fn.get("name") or ""), arguments=args)
    return ToolCall(id=str(call.get("id") or ""), name=str(fn.get("name") or ""), arguments={}, raw_arguments=str(raw))


def to_request(body: dict[str, Any], max_new_tokens: int) -> LLMRequest:
    """An OpenAI chat request as the provider-neutral :class:`LLMRequest`."""
    messages: list[ChatMessage] = []
    for m in body["messages"]:
        role: Any = "system" if m.get("role") == "developer" else m.get("role")
        calls = [_tool_call(c) for c in m.get("tool_calls") or () if isinstance(c, dict)]
        messages.append(
            ChatMessage(
                role=role,
                content=_text(m.get("content")),
                tool_calls=calls,
                tool_call_id=m.get("tool_call_id") if isinstance(m.get("tool_call_id"), str) else None,
                name=m.get("name") if isinstance(m.get("name"), str) else None,
            )
        )
    tools = []
    for t in body.get("tools") or ():
        fn = t.get("function") if isinstance(t, dict) and isinstance(t.get("function"), dict) else None
        if fn and isinstance(fn.get("name"), str):
            params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {"type": "object"}
            tools.append(ToolSpec(fn["name"], str(fn.get("description") or ""), params))
    choice = body.get("tool_choice")
    tool_choice = "auto"
    if choice == "none":
        tool_choice = "none"
    elif choice == "required" or isinstance(choice, dict):
        tool_choice = "required"
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or max_new_tokens
    temperature = body.get("temperature")
    return LLMRequest(
        messages=messages,
        tools=tools,
        temperature=0.0 if temperature is None else float(temperature),
        max_tokens=min(int(limit), max_new_tokens),
        tool_choice=tool_choice,  # type: ignore[arg-type]  # one of the three literals above
    )


def _calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id or f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {
                "name": c.name,
                "arguments": c.raw_arguments if c.raw_arguments is not None else json.dumps(c.arguments),
            },
        }
        for c in calls
    ]


class LocalModel:
    """Answers ``/v1`` requests from the embedded model."""

    def __init__(self, provider: LLMProvider, model_name: str, max_new_tokens: int) -> None:
        self.provider = provider
        self.model_name = model_name
        self.max_new_tokens = max_new_tokens

    async def complete(self, body: dict[str, Any]) -> tuple[bytes, Completion]:
        """A ``chat.completion`` body and what it said."""
        request = to_request(body, self.max_new_tokens)
        try:
            reply = await self.provider.complete(request)
        except LLMError as exc:
            raise UpstreamFailed(f"The local model failed: {exc}", upstream_status=500) from exc
        completion = Completion(
            content=reply.content,
            tool_calls=_calls_json(reply.tool_calls),
            finish_reason=reply.finish_reason or "stop",
            model=self.model_name,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            usage_seen=True,
        )
        message = completion.message()
        if not completion.tool_calls:
            message.pop("tool_calls", None)
        data = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason, "logprobs": None}],
            "usage": {
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "total_tokens": completion.total_tokens,
            },
        }
        return orjson.dumps(data), completion

    async def stream(self, body: dict[str, Any], completion: Completion, include_usage: bool) -> AsyncIterator[bytes]:
        """Server-sent ``chat.completion.chunk`` events ending in ``data: [DONE]``; ``completion``
        is filled in as the reply is made."""
        request = to_request(body, self.max_new_tokens)
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        completion.model = self.model_name

        def event(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model_name,
                "choices": [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage is not None:
                data["usage"] = usage
            return b"data: " + orjson.dumps(data) + b"\n\n"

        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        live = not request.tools or request.tool_choice == "none"

        async def run() -> Any:
            try:
                return await self.provider.complete(request, on_token=pieces.put_nowait if live else None)  # type: ignore[call-arg]
            finally:
                pieces.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            yield event({"role": "assistant", "content": ""})
            while (piece := await pieces.get()) is not None:
                if piece:
                    yield event({"content": piece})
            try:
                reply = await task
            except LLMError as exc:
                raise UpstreamFailed(f"The local model failed: {exc}", upstream_status=500) from exc
            completion.content = reply.content
            completion.tool_calls = _calls_json(reply.tool_calls)
            completion.prompt_tokens = reply.usage.prompt_tokens
            completion.completion_tokens = reply.usage.completion_tokens
            completion.usage_seen = True
            completion.finish_reason = reply.finish_reason or "stop"
            if not live:
                if reply.content:
                    yield event({"content": reply.content})
                if completion.tool_calls:
                    yield event({"tool_calls": [{"index": i, **c} for i, c in enumerate(completion.tool_calls)]})
            yield event({}, completion.finish_reason)
            if include_usage:
                usage = {
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "total_tokens": completion.total_tokens,
                }
                yield event({}, usage=usage)
            yield b"data: [DONE]\n\n"
        finally:
            if not task.done():
                task.cancel()
