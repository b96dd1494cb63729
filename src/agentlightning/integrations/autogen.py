"""``AutoGenWrapper``: trace an AutoGen (autogen-agentchat 0.7) agent to the platform.

The spec's ``from autogen import AssistantAgent`` is the old AutoGen 0.2 API; current AutoGen is
``autogen_agentchat.agents.AssistantAgent`` with a model client such as
``autogen_ext.models.openai.OpenAIChatCompletionClient``. The wrapper puts a
:class:`RecordingChatCompletionClient` around the agent's model client (a
``ChatCompletionClient``), so every model call the agent makes, through the wrapper or in a team,
is an ``llm`` span; ``run``, ``run_stream``, ``on_messages`` and ``on_messages_stream`` return
exactly what the agent returns, each call one rollout (or part of the current one).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from typing import Any

from autogen_core import CancellationToken, ComponentModel
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from agentlightning.integrations.base import TrainableWrapper
from agentlightning.sdk.client import Client
from agentlightning.sdk.models import AgentResources
from agentlightning.sdk.plan import CallPlan
from agentlightning.sdk.rollout import Rollout, active, begin_call, end_call
from agentlightning.sdk.spans import SpanTimer, llm_span

logger = logging.getLogger("agentlightning.sdk")


def openai_style(messages: Sequence[LLMMessage]) -> list[dict[str, Any]]:
    """AutoGen's messages in the OpenAI chat format (how spans store messages)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            out.append({"role": "system", "content": message.content})
        elif isinstance(message, UserMessage):
            content = message.content
            if not isinstance(content, str):
                content = "\n".join(part if isinstance(part, str) else "<image>" for part in content)
            out.append({"role": "user", "content": content, "name": message.source})
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                out.append({"role": "assistant", "content": message.content})
            else:
                calls = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in message.content
                ]
                out.append({"role": "assistant", "content": message.thought, "tool_calls": calls})
        elif isinstance(message, FunctionExecutionResultMessage):
            out.extend(
                {"role": "tool", "tool_call_id": r.call_id, "name": r.name, "content": r.content}
                for r in message.content
            )
        else:
            out.append({"role": "unknown", "content": str(message)})
    return out


class RecordingChatCompletionClient(ChatCompletionClient):
    """A ``ChatCompletionClient`` that records each call of ``inner`` and applies ``wrapper``'s
    promoted resources (system message, model, temperature, with the rollout's bandit variant);
    everything else is ``inner``'s."""

    component_type = "model"

    def __init__(self, inner: ChatCompletionClient, wrapper: TrainableWrapper) -> None:
        self.inner = inner
        self._wrapper = wrapper
        self._warned = False

    def _plan(self) -> CallPlan:
        plan = self._wrapper.plan()
        if plan.gateway is not None and not self._warned:
            self._warned = True
            logger.warning(
                "agentlightning: an adapter serves agent %s on the platform; the AutoGen wrapper cannot route its"
                " model client through the platform's gateway: give the agent an OpenAIChatCompletionClient"
                " with base_url=<platform>/v1",
                self._wrapper.agent_id,
            )
        return plan

    def _apply(
        self, messages: Sequence[LLMMessage], extra_create_args: Mapping[str, Any], resources: AgentResources | None
    ) -> tuple[Sequence[LLMMessage], Mapping[str, Any]]:
        if resources is None:
            return messages, extra_create_args
        try:
            if resources.system_prompt is not None:
                replaced = list(messages)
                for i, message in enumerate(replaced):
                    if isinstance(message, SystemMessage):
                        replaced[i] = SystemMessage(content=resources.system_prompt)
                        break
                else:
                    replaced.insert(0, SystemMessage(content=resources.system_prompt))
                messages = replaced
            overrides = {
                k: v for k, v in (("model", resources.model), ("temperature", resources.temperature)) if v is not None
            }
            if overrides:
                extra_create_args = {**extra_create_args, **overrides}
        except Exception:
            logger.debug("agentlightning: could not apply resources", exc_info=True)
        return messages, extra_create_args

    def _record(
        self,
        rollout: Rollout,
        timer: SpanTimer,
        messages: Sequence[LLMMessage],
        extra_create_args: Mapping[str, Any],
        result: CreateResult | None,
        error: BaseException | None = None,
    ) -> None:
        try:
            content = result.content if result is not None else None
            tool_calls = None
            if isinstance(content, list):
                tool_calls = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in content
                ]
                content = result.thought if result is not None else None
            model = extra_create_args.get("model") or self.inner.model_info.get("family")
            create_args = getattr(self.inner, "_create_args", None)
            if isinstance(create_args, dict) and "model" not in extra_create_args:
                model = create_args.get("model", model)
            span = llm_span(
                timer,
                name="autogen.create",
                messages=openai_style(messages),
                response=content,
                tool_calls=tool_calls,
                model=model if isinstance(model, str) else None,
                prompt_tokens=result.usage.prompt_tokens if result is not None else None,
                completion_tokens=result.usage.completion_tokens if result is not None else None,
                error=error,
                attributes={
                    "finish_reason": result.finish_reason if result is not None else None,
                    "cached": result.cached if result is not None else None,
                    "framework": "autogen",
                },
            )
            rollout.add_span(span, agent_id=self._wrapper.agent_id)
        except Exception:
            logger.debug("agentlightning: could not record a span", exc_info=True)

    @contextlib.contextmanager
    def _recorded(
        self,
        messages: Sequence[LLMMessage],
        extra_create_args: Mapping[str, Any],
        metadata: dict[str, Any] | None,
        *,
        stream: bool = False,
    ) -> Iterator[_Call]:
        """One call of the inner client, recorded: the body sets ``call.result``; the span and the
        rollout's end are recorded when the body ends or raises (a ``stream`` closed early ends
        the rollout without a span)."""
        rollout, owned = begin_call(
            self._wrapper.recorder,
            agent_id=self._wrapper.agent_id,
            input={"messages": openai_style(messages)},
            metadata=metadata,
        )
        timer = SpanTimer()
        call = _Call()
        try:
            yield call
        except BaseException as exc:
            if stream and isinstance(exc, GeneratorExit):
                end_call(rollout, owned)
            else:
                self._record(rollout, timer, messages, extra_create_args, None, exc)
                end_call(rollout, owned, failed=True)
            raise
        self._record(rollout, timer, messages, extra_create_args, call.result)
        end_call(rollout, owned, output={"content": call.result.content} if call.result is not None else None)

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Any = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """The inner client's ``create``, recorded."""
        plan = self._plan()
        messages, extra_create_args = self._apply(messages, extra_create_args, plan.resources)
        with self._recorded(messages, extra_create_args, plan.metadata) as call:
            result = call.result = await self.inner.create(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
        return result

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Any = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """The inner client's ``create_stream``: the same items; recorded at its ``CreateResult``."""
        plan = self._plan()
        messages, extra_create_args = self._apply(messages, extra_create_args, plan.resources)
        with self._recorded(messages, extra_create_args, plan.metadata, stream=True) as call:
            async for item in self.inner.create_stream(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            ):
                if isinstance(item, CreateResult):
                    call.result = item
                yield item

    async def close(self) -> None:
        """Close the inner client."""
        await self.inner.close()

    def actual_usage(self) -> RequestUsage:
        """The inner client's usage."""
        return self.inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        """The inner client's total usage."""
        return self.inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        """The inner client's token count."""
        return self.inner.count_tokens(messages, tools=tools)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        """The inner client's remaining tokens."""
        return self.inner.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        """The inner client's (deprecated) capabilities."""
        return self.inner.capabilities

    @property
    def model_info(self) -> ModelInfo:
        """The inner client's model info."""
        return self.inner.model_info

    def dump_component(self) -> ComponentModel:
        """The inner client's configuration (a saved agent reloads with its own client)."""
        return self.inner.dump_component()

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class AutoGenWrapper(TrainableWrapper):
    """Wrap an AutoGen agent that has a model client (``AssistantAgent``); see the module
    docstring. ``client`` is the platform client to record to."""

    default_agent_name = "autogen-agent"

    def __init__(self, agent: Any, *, client: Client | None = None) -> None:
        super().__init__(client)
        self.agent = agent
        model_client = getattr(agent, "_model_client", None)
        if not isinstance(model_client, ChatCompletionClient):
            raise TypeError(
                "AutoGenWrapper needs an agent with a model client, such as autogen_agentchat's AssistantAgent"
            )
        if isinstance(model_client, RecordingChatCompletionClient):
            model_client = model_client.inner
        self.model_client = RecordingChatCompletionClient(model_client, self)
        agent._model_client = self.model_client

    def __getattr__(self, name: str) -> Any:
        agent = self.__dict__.get("agent")
        if agent is None:
            raise AttributeError(name)
        return getattr(agent, name)

    def _begin(self, task: Any) -> tuple[Rollout, bool]:
        return begin_call(self.recorder, agent_id=self.agent_id, input=task)

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        """``agent.run(task=...)``: the same ``TaskResult``, recorded as one rollout."""
        rollout, owned = self._begin(kwargs.get("task"))
        try:
            with active(rollout):
                result = await self.agent.run(*args, **kwargs)
        except BaseException:
            end_call(rollout, owned, failed=True)
            raise
        messages = getattr(result, "messages", None) or []
        end_call(rollout, owned, output=getattr(messages[-1], "content", None) if messages else None)
        return result

    async def run_stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """``agent.run_stream(task=...)``: the same items, recorded as one rollout."""
        rollout, owned = self._begin(kwargs.get("task"))
        last: Any = None
        try:
            with active(rollout):
                async for item in self.agent.run_stream(*args, **kwargs):
                    last = item
                    yield item
        except GeneratorExit:
            end_call(rollout, owned)
            raise
        except BaseException:
            end_call(rollout, owned, failed=True)
            raise
        messages = getattr(last, "messages", None) or []
        end_call(rollout, owned, output=getattr(messages[-1], "content", None) if messages else None)

    async def on_messages(self, messages: Sequence[Any], cancellation_token: CancellationToken) -> Any:
        """``agent.on_messages``: the same ``Response``, recorded as one rollout."""
        rollout, owned = self._begin([getattr(m, "content", m) for m in messages])
        try:
            with active(rollout):
                response = await self.agent.on_messages(messages, cancellation_token)
        except BaseException:
            end_call(rollout, owned, failed=True)
            raise
        end_call(rollout, owned, output=getattr(getattr(response, "chat_message", None), "content", None))
        return response

    async def on_messages_stream(
        self, messages: Sequence[Any], cancellation_token: CancellationToken
    ) -> AsyncGenerator[Any, None]:
        """``agent.on_messages_stream``: the same items, recorded as one rollout."""
        rollout, owned = self._begin([getattr(m, "content", m) for m in messages])
        last: Any = None
        try:
            with active(rollout):
                async for item in self.agent.on_messages_stream(messages, cancellation_token):
                    last = item
                    yield item
        except GeneratorExit:
            end_call(rollout, owned)
            raise
        except BaseException:
            end_call(rollout, owned, failed=True)
            raise
        end_call(rollout, owned, output=getattr(getattr(last, "chat_message", None), "content", None))


class _Call:
    """One recorded call in progress: the ``CreateResult`` once there is one."""

    def __init__(self) -> None:
        self.result: CreateResult | None = None
