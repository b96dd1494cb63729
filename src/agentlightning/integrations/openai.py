"""``OpenAIWrapper``: trace an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client to the platform.

``wrapped.chat.completions.create(...)`` returns exactly what the client returns (the same
``ChatCompletion`` object, or the same ``Stream``/``AsyncStream`` object yielding the same chunk
objects) and records one ``llm`` span per call: messages, response, tool calls, model, tokens and
latency. A stream is recorded when it ends, fails or is closed. Every other attribute of the
client passes through untouched. After ``enable_rl_training()`` the agent's promoted resources
(with the rollout's bandit variant, if the agent runs a bandit) replace (or insert) the system
message and set the model and temperature of each call; when an adapter serves the agent, the call
goes to the platform's gateway (a copy of the client with the platform's URL and the SDK client's
credentials), and back to the client's own upstream when the adapter is gone or the platform
cannot be reached.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import openai
from openai.resources.chat.completions import AsyncCompletions

from agentlightning.integrations.base import TrainableWrapper
from agentlightning.sdk.client import Client
from agentlightning.sdk.models import AgentResources
from agentlightning.sdk.plan import CallPlan, GatewayRoute
from agentlightning.sdk.rollout import Rollout, begin_call, end_call
from agentlightning.sdk.spans import SpanTimer, llm_span

logger = logging.getLogger("agentlightning.sdk")


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)


def apply_resources(kwargs: dict[str, Any], resources: AgentResources | None) -> dict[str, Any]:
    """``create``'s arguments with the agent's promoted resources applied (a new dict; the
    caller's ``messages`` list is never modified)."""
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


class _Skip(Exception):
    """No span of the SDK's own: the gateway recorded the call."""


_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "tools", "tool_choice", "stop", "seed")


class _Call:
    """One ``create`` call being recorded: its rollout, timer and (for streams) the chunks' sum."""

    def __init__(self, wrapper: OpenAIWrapper, kwargs: dict[str, Any], metadata: dict[str, Any] | None) -> None:
        self.wrapper = wrapper
        self.kwargs = kwargs
        #: The gateway records the call into the rollout itself (the SDK adds no span of its own).
        self.via_gateway = False
        self.routed = False
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
                wrapper.recorder,
                agent_id=wrapper.agent_id,
                input={"messages": kwargs.get("messages")},
                metadata=metadata,
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
            if self.via_gateway:
                raise _Skip
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
        except _Skip:
            pass
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


def _gateway_refused(exc: BaseException) -> bool:
    """Whether a gateway call failed in a way that calling the client's own upstream may fix: the
    platform unreachable, or the agent's adapter gone since the last refresh."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    if not isinstance(exc, openai.APIStatusError) or exc.status_code != 404:
        return False
    return getattr(exc, "code", None) == ADAPTER_GONE or ADAPTER_GONE in str(exc)


#: The gateway's error code for an ``X-Agent-Apply: adapter`` call of an agent without an adapter.
ADAPTER_GONE = "agent_has_no_adapter"


class _Completions:
    """``wrapped.chat.completions``: ``create`` recorded, everything else the client's own."""

    def __init__(self, wrapper: OpenAIWrapper, inner: Any) -> None:
        self._wrapper = wrapper
        self._inner = inner
        self._async = isinstance(inner, AsyncCompletions)
        self._gateway: tuple[GatewayRoute, Any] | None = None
        self.create: Callable[..., Any] = self._create_async if self._async else self._create_sync

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], _Call, CallPlan]:
        plan = self._wrapper.plan()
        try:
            kwargs = apply_resources(kwargs, plan.resources)
        except Exception:
            logger.debug("agentlightning: could not apply resources", exc_info=True)
        return kwargs, _Call(self._wrapper, kwargs, plan.metadata), plan

    def _target(self, plan: CallPlan, call: _Call, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Where the call goes: the client's own ``create``, or the gateway's (with its headers)."""
        route = plan.gateway
        if route is None:
            return self._inner, kwargs
        try:
            if self._gateway is None or self._gateway[0] != route:
                copy = self._wrapper.wrapped.with_options(base_url=route.base_url, api_key=route.api_key)
                self._gateway = (route, copy.chat.completions)
            headers = {**(kwargs.get("extra_headers") or {}), **route.call_headers(call.rollout)}
            call.routed = True
            call.via_gateway = call.rollout is not None
            return self._gateway[1], {**kwargs, "extra_headers": headers}
        except Exception:
            logger.debug("agentlightning: could not route through the gateway", exc_info=True)
            return self._inner, kwargs

    def _fallback(self, exc: BaseException, call: _Call) -> bool:
        """After a failed gateway call: whether to call the client's own upstream instead."""
        if not call.routed or not _gateway_refused(exc):
            return False
        logger.warning("agentlightning: the platform's gateway failed (%s); calling the model directly", exc)
        if isinstance(exc, openai.APIStatusError):
            link = self._wrapper._al_link
            if link is not None:
                link.adapter_gone()
        call.via_gateway = call.routed = False
        return True

    def _create_sync(self, *args: Any, **kwargs: Any) -> Any:
        kwargs, call, plan = self._prepare(kwargs)
        target, sent = self._target(plan, call, kwargs)
        try:
            try:
                result = target.create(*args, **sent)
            except Exception as exc:
                if not self._fallback(exc, call):
                    raise
                result = self._inner.create(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        if kwargs.get("stream"):
            return _watch_sync_stream(result, call)
        call.completed(result)
        return result

    async def _create_async(self, *args: Any, **kwargs: Any) -> Any:
        kwargs, call, plan = self._prepare(kwargs)
        target, sent = self._target(plan, call, kwargs)
        try:
            try:
                result = await target.create(*args, **sent)
            except Exception as exc:
                if not self._fallback(exc, call):
                    raise
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
