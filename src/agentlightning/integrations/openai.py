"""``OpenAIWrapper``: trace an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client to the platform.

``wrapped.chat.completions.create(...)`` returns exactly what the client returns (the same
``ChatCompletion`` object, or the same ``Stream``/``AsyncStream`` object yielding the same chunk
objects) and records one ``llm`` span per call: messages, response, tool calls, model, tokens and
latency. A stream is recorded when it ends, fails or is closed. Every other attribute of the
client passes through untouched. After ``enable_rl_training()`` the agent's promoted resources
replace (or insert) the system message and set the model and temperature of each call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from openai.resources.chat.completions import AsyncCompletions

from agentlightning.integrations.base import TrainableWrapper
from agentlightning.sdk.client import Client
from agentlightning.sdk.rollout import Rollout, begin_call, end_call
from agentlightning.sdk.spans import SpanTimer, llm_span

logger = logging.getLogger("agentlightning.sdk")


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)


def apply_resources(kwargs: dict[str, Any], wrapper: TrainableWrapper) -> dict[str, Any]:
    """``create``'s arguments with the agent's promoted resources applied (a new dict; the
    caller's ``messages`` list is never modified)."""
    resources = wrapper.resources
    if resources is None:
        return kwargs
    kwargs = dict(kwargs)
    if resources.system_prompt is not None and isinstance(kwargs.get("messages"), list | tuple):
        messages = list(kwargs["messages"])
        for i, message in enumerate(messages):
            role = _role(message)
            if role in ("system", "developer"):
                base = dict(message) if isinstance(message, Mapping) else {"role": role}
                messages[i] = {**base, "content": resources.system_prompt}
                break
        else:
            messages.insert(0, {"role": "system", "content": resources.system_prompt})
        kwargs["messages"] = messages
    if resources.model:
        kwargs["model"] = resources.model
    if resources.temperature is not None:
        kwargs["temperature"] = resources.temperature
    return kwargs


_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "tools", "tool_choice", "stop", "seed")


class _Call:
    """One ``create`` call being recorded: its rollout, timer and (for streams) the chunks' sum."""

    def __init__(self, wrapper: OpenAIWrapper, kwargs: dict[str, Any]) -> None:
        self.wrapper = wrapper
        self.kwargs = kwargs
        self.timer = SpanTimer()
        self.rollout: Rollout | None = None
        self.owned = False
        self.done = False
        # stream aggregation
        self.content: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.response_id: str | None = None
        self.usage: Any = None
        self.chunks = 0
        try:
            self.rollout, self.owned = begin_call(
                wrapper.recorder, agent_id=wrapper.agent_id, input={"messages": kwargs.get("messages")}
            )
        except Exception:
            logger.debug("agentlightning: could not start recording", exc_info=True)

    def _emit(
        self,
        *,
        content: Any,
        tool_calls: Any,
        model: Any,
        usage: Any,
        finish_reason: Any,
        response_id: Any,
        error: BaseException | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if self.done or self.rollout is None:
            return
        self.done = True
        try:
            span = llm_span(
                self.timer,
                name="chat.completions.create",
                messages=self.kwargs.get("messages"),
                response=content,
                tool_calls=tool_calls,
                model=model if isinstance(model, str) else self.kwargs.get("model"),
                prompt_tokens=getattr(usage, "prompt_tokens", None),
                completion_tokens=getattr(usage, "completion_tokens", None),
                params={k: self.kwargs[k] for k in _PARAMS if k in self.kwargs},
                error=error,
                attributes={
                    "finish_reason": finish_reason,
                    "response_id": response_id,
                    "stream": bool(self.kwargs.get("stream")),
                    "framework": "openai",
                    **(extra or {}),
                },
            )
            self.rollout.add_span(span, agent_id=self.wrapper.agent_id)
        except Exception:
            logger.debug("agentlightning: could not record a span", exc_info=True)
        end_call(
            self.rollout, self.owned, failed=error is not None, output={"content": content} if error is None else None
        )

    def completed(self, result: Any) -> None:
        """Record a non-streamed ``ChatCompletion``."""
        try:
            choice = result.choices[0] if getattr(result, "choices", None) else None
            message = getattr(choice, "message", None)
            self._emit(
                content=getattr(message, "content", None),
                tool_calls=getattr(message, "tool_calls", None),
                model=getattr(result, "model", None),
                usage=getattr(result, "usage", None),
                finish_reason=getattr(choice, "finish_reason", None),
                response_id=getattr(result, "id", None),
                error=None,
            )
        except Exception:
            logger.debug("agentlightning: could not record a completion", exc_info=True)

    def failed(self, error: BaseException) -> None:
        """Record a call (or stream) that raised."""
        self._emit(
            content=None,
            tool_calls=None,
            model=self.model,
            usage=self.usage,
            finish_reason=None,
            response_id=self.response_id,
            error=error,
        )

    def chunk(self, chunk: Any) -> None:
        """Add one streamed ``ChatCompletionChunk`` to the sum."""
        try:
            self.chunks += 1
            self.model = getattr(chunk, "model", None) or self.model
            self.response_id = getattr(chunk, "id", None) or self.response_id
            if getattr(chunk, "usage", None) is not None:
                self.usage = chunk.usage
            for choice in getattr(chunk, "choices", None) or ():
                if getattr(choice, "index", 0) != 0:
                    continue
                if choice.finish_reason:
                    self.finish_reason = choice.finish_reason
                delta = choice.delta
                if delta is None:
                    continue
                if delta.content:
                    self.content.append(delta.content)
                for call in delta.tool_calls or ():
                    slot = self.tool_calls.setdefault(
                        call.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                    )
                    if call.id:
                        slot["id"] = call.id
                    if call.function is not None:
                        slot["function"]["name"] += call.function.name or ""
                        slot["function"]["arguments"] += call.function.arguments or ""
        except Exception:
            logger.debug("agentlightning: could not read a chunk", exc_info=True)

    def stream_ended(self, *, closed_early: bool = False) -> None:
        """Record the stream's sum (when it ends, or is closed before its end)."""
        self._emit(
            content="".join(self.content) if self.content or not self.tool_calls else None,
            tool_calls=[self.tool_calls[i] for i in sorted(self.tool_calls)] or None,
            model=self.model,
            usage=self.usage,
            finish_reason=self.finish_reason,
            response_id=self.response_id,
            error=None,
            extra={"chunks": self.chunks, **({"closed_early": True} if closed_early else {})},
        )


def _watch_sync_stream(stream: Any, call: _Call) -> Any:
    """Record ``stream`` (an ``openai.Stream``) as it is consumed; returns the same object."""
    inner: Iterator[Any] | None = getattr(stream, "_iterator", None)
    if inner is None:
        logger.debug("agentlightning: unknown stream type %s; not recorded", type(stream).__name__)
        return stream

    def watched() -> Iterator[Any]:
        try:
            for chunk in inner:
                call.chunk(chunk)
                yield chunk
        except GeneratorExit:
            call.stream_ended(closed_early=True)
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        call.stream_ended()

    original_close: Callable[[], None] = stream.close

    def close() -> None:
        try:
            original_close()
        finally:
            call.stream_ended(closed_early=True)

    stream._iterator = watched()
    stream.close = close
    return stream


def _watch_async_stream(stream: Any, call: _Call) -> Any:
    """Record ``stream`` (an ``openai.AsyncStream``) as it is consumed; returns the same object."""
    inner: AsyncIterator[Any] | None = getattr(stream, "_iterator", None)
    if inner is None:
        logger.debug("agentlightning: unknown stream type %s; not recorded", type(stream).__name__)
        return stream

    async def watched() -> AsyncIterator[Any]:
        try:
            async for chunk in inner:
                call.chunk(chunk)
                yield chunk
        except GeneratorExit:
            call.stream_ended(closed_early=True)
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        call.stream_ended()

    original_close = stream.close

    async def close() -> None:
        try:
            await original_close()
        finally:
            call.stream_ended(closed_early=True)

    stream._iterator = watched()
    stream.close = close
    return stream


class _Completions:
    """``wrapped.chat.completions``: ``create`` recorded, everything else the client's own."""

    def __init__(self, wrapper: OpenAIWrapper, inner: Any) -> None:
        self._wrapper = wrapper
        self._inner = inner
        self._async = isinstance(inner, AsyncCompletions)
        self.create: Callable[..., Any] = self._create_async if self._async else self._create_sync

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _prepare(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            return apply_resources(kwargs, self._wrapper)
        except Exception:
            logger.debug("agentlightning: could not apply resources", exc_info=True)
            return kwargs

    def _create_sync(self, *args: Any, **kwargs: Any) -> Any:
        kwargs = self._prepare(kwargs)
        call = _Call(self._wrapper, kwargs)
        try:
            result = self._inner.create(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        if kwargs.get("stream"):
            return _watch_sync_stream(result, call)
        call.completed(result)
        return result

    async def _create_async(self, *args: Any, **kwargs: Any) -> Any:
        kwargs = self._prepare(kwargs)
        call = _Call(self._wrapper, kwargs)
        try:
            result = await self._inner.create(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        if kwargs.get("stream"):
            return _watch_async_stream(result, call)
        call.completed(result)
        return result


class _Chat:
    """``wrapped.chat``: ``completions`` recorded, everything else the client's own."""

    def __init__(self, wrapper: OpenAIWrapper, inner: Any) -> None:
        self._inner = inner
        self.completions = _Completions(wrapper, inner.completions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class OpenAIWrapper(TrainableWrapper):
    """Wrap an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client (see the module docstring).

    ``client`` is the platform :class:`~agentlightning.Client` to record to (default: the one
    configured by ``AGENTLIGHTNING_URL`` / ``AGENTLIGHTNING_API_KEY``)."""

    default_agent_name = "openai-agent"

    def __init__(self, openai_client: Any, *, client: Client | None = None) -> None:
        super().__init__(client)
        self.wrapped = openai_client
        self.chat = _Chat(self, openai_client.chat)

    def __getattr__(self, name: str) -> Any:
        wrapped = self.__dict__.get("wrapped")
        if wrapped is None:
            raise AttributeError(name)
        return getattr(wrapped, name)
