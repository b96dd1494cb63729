"""``LangChainWrapper``: trace a LangChain chat model (or any runnable) to the platform.

Built on langchain-core 1.x callbacks: a :class:`~langchain_core.callbacks.BaseCallbackHandler`
added to each call's config records every chat-model call (``on_chat_model_start`` /
``on_llm_end``) as an ``llm`` span and every tool call (``on_tool_*``) as a ``tool`` span, for
the wrapped model and for whatever runs inside the wrapped runnable. ``invoke``, ``ainvoke``,
``stream``, ``astream``, ``batch`` and ``abatch`` return exactly what the runnable returns.

The spec's ``langchain.chat_models.ChatOpenAI`` and ``langchain.memory.ConversationBufferMemory``
moved: the model is ``langchain_openai.ChatOpenAI`` and the memory any
``langchain_core.chat_history.BaseChatMessageHistory`` (e.g. ``InMemoryChatMessageHistory``).
With ``prompt`` the call's input is the prompt's variables and the history fills its
``history`` placeholder; without it the history is put before the input messages. Each call's
human input and the model's answer are then added to the history.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
    message_chunk_to_message,
)
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import LLMResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import merge_configs

from agentlightning.integrations.base import TrainableWrapper
from agentlightning.sdk.client import Client
from agentlightning.sdk.models import AgentResources
from agentlightning.sdk.plan import CallPlan
from agentlightning.sdk.rollout import Rollout, begin_call, end_call
from agentlightning.sdk.spans import SpanTimer, llm_span, tool_span

logger = logging.getLogger("agentlightning.sdk")


def _openai_messages(messages: Sequence[BaseMessage]) -> Any:
    try:
        return convert_to_openai_messages(list(messages))
    except Exception:
        return [m.model_dump() for m in messages]


def _tokens(result: LLMResult, message: Any) -> tuple[int | None, int | None]:
    usage = getattr(message, "usage_metadata", None)
    if usage:
        return usage.get("input_tokens"), usage.get("output_tokens")
    token_usage = (result.llm_output or {}).get("token_usage") or {}
    return token_usage.get("prompt_tokens"), token_usage.get("completion_tokens")


class RecordingHandler(BaseCallbackHandler):
    """Records the LLM and tool calls of one wrapped call into ``rollout``."""

    run_inline = True  # only queues a dict: no need for a thread hop in async code
    raise_error = False

    def __init__(self, rollout: Rollout, agent_id: int | None) -> None:
        self.rollout = rollout
        self.agent_id = agent_id
        self._open: dict[UUID, tuple[SpanTimer, Any, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _start(self, run_id: UUID, payload: Any, info: dict[str, Any]) -> None:
        with self._lock:
            self._open[run_id] = (SpanTimer(), payload, info)

    def _pop(self, run_id: UUID) -> tuple[SpanTimer, Any, dict[str, Any]] | None:
        with self._lock:
            return self._open.pop(run_id, None)

    def _add(self, span: dict[str, Any]) -> None:
        try:
            self.rollout.add_span(span, agent_id=self.agent_id)
        except Exception:
            logger.debug("agentlightning: could not record a span", exc_info=True)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        invocation_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the messages a chat model is called with."""
        params = invocation_params or {}
        name = (serialized or {}).get("name") or params.get("_type") or "chat_model"
        self._start(
            run_id,
            _openai_messages(messages[0] if messages else []),
            {"name": str(name), "model": params.get("model") or params.get("model_name"), "params": params},
        )

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any) -> None:
        """Note the prompt a (non-chat) LLM is called with."""
        params = kwargs.get("invocation_params") or {}
        name = (serialized or {}).get("name") or "llm"
        self._start(
            run_id,
            [{"role": "user", "content": p} for p in prompts],
            {"name": str(name), "model": params.get("model") or params.get("model_name"), "params": params},
        )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the finished model call as an ``llm`` span."""
        opened = self._pop(run_id)
        if opened is None:
            return
        timer, messages, info = opened
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        message = getattr(generation, "message", None)
        content = getattr(message, "content", None) if message is not None else getattr(generation, "text", None)
        metadata = getattr(message, "response_metadata", None) or {}
        prompt_tokens, completion_tokens = _tokens(response, message)
        model = (response.llm_output or {}).get("model_name") or metadata.get("model_name") or info.get("model")
        params = {k: info["params"][k] for k in ("temperature", "max_tokens", "tools") if k in info["params"]}
        self._add(
            llm_span(
                timer,
                name=info["name"],
                messages=messages,
                response=content,
                tool_calls=getattr(message, "tool_calls", None) or None,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                params=params,
                attributes={"finish_reason": metadata.get("finish_reason"), "framework": "langchain"},
            )
        )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a model call that raised."""
        opened = self._pop(run_id)
        if opened is not None:
            timer, messages, info = opened
            self._add(
                llm_span(
                    timer,
                    name=info["name"],
                    messages=messages,
                    response=None,
                    model=info.get("model"),
                    error=error,
                    attributes={"framework": "langchain"},
                )
            )

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note a tool's name and input."""
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        self._start(run_id, inputs if inputs is not None else input_str, {"name": str(name)})

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the finished tool call as a ``tool`` span."""
        opened = self._pop(run_id)
        if opened is not None:
            timer, tool_input, info = opened
            self._add(tool_span(timer, name=info["name"], input=tool_input, output=getattr(output, "content", output)))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a tool call that raised."""
        opened = self._pop(run_id)
        if opened is not None:
            timer, tool_input, info = opened
            self._add(tool_span(timer, name=info["name"], input=tool_input, error=error))


def _as_messages(value: Any) -> list[BaseMessage]:
    """A model input (text, messages, a prompt value) as a list of messages."""
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return [HumanMessage(content=value)]
    if isinstance(value, BaseMessage):
        return [value]
    return convert_to_messages(value)


def _with_system_prompt(prompt: str) -> Runnable[Any, list[BaseMessage]]:
    """A step replacing the first system message of the model's input (or inserting one)."""

    def apply(value: Any) -> list[BaseMessage]:
        messages = list(_as_messages(value))
        for i, message in enumerate(messages):
            if isinstance(message, SystemMessage):
                messages[i] = SystemMessage(content=prompt)
                break
        else:
            messages.insert(0, SystemMessage(content=prompt))
        return messages

    return RunnableLambda(apply, name="agentlightning_system_prompt")


class LangChainWrapper(TrainableWrapper):
    """Wrap a LangChain chat model (or any runnable), with an optional prompt and chat history
    (see the module docstring). ``client`` is the platform client to record to."""

    default_agent_name = "langchain-agent"

    def __init__(
        self,
        llm: Runnable[Any, Any],
        prompt: Runnable[Any, Any] | None = None,
        memory: BaseChatMessageHistory | None = None,
        *,
        client: Client | None = None,
        input_key: str = "input",
        history_key: str = "history",
    ) -> None:
        super().__init__(client)
        self.llm = llm
        self.prompt = prompt
        self.memory = memory
        self.input_key = input_key
        self.history_key = history_key
        self._al_warned = False

    def __getattr__(self, name: str) -> Any:
        llm = self.__dict__.get("llm")
        if llm is None:
            raise AttributeError(name)
        return getattr(llm, name)

    # --- building the call -----------------------------------------------------------------------

    def _runnable(self, resources: AgentResources | None) -> Runnable[Any, Any]:
        model: Runnable[Any, Any] = self.llm
        if resources is not None and isinstance(self.llm, BaseChatModel):
            overrides = {
                k: v for k, v in (("model", resources.model), ("temperature", resources.temperature)) if v is not None
            }
            if overrides:
                model = model.bind(**overrides)
            if resources.system_prompt is not None:
                model = _with_system_prompt(resources.system_prompt) | model
        return self.prompt | model if self.prompt is not None else model

    def _prepare(self, input: Any) -> Any:
        if self.memory is None:
            return input
        history = list(self.memory.messages)
        if self.prompt is None:
            return history + _as_messages(input)
        variables = set(getattr(self.prompt, "input_variables", []) or []) | set(
            getattr(self.prompt, "optional_variables", []) or []
        )
        if isinstance(input, dict) and self.history_key in variables:
            return {**input, self.history_key: history}
        return input

    def _remember(self, input: Any, output: Any) -> None:
        if self.memory is None:
            return
        if self.prompt is None:
            human = [m for m in _as_messages(input) if not isinstance(m, SystemMessage)]
        elif isinstance(input, dict) and self.input_key in input:
            human = [HumanMessage(content=str(input[self.input_key]))]
        else:
            human = [HumanMessage(content=str(input))]
        if isinstance(output, BaseMessage):
            answer: BaseMessage = message_chunk_to_message(output)
        else:
            answer = AIMessage(content=str(output))
        self.memory.add_messages([*human, answer])

    def _config(self, config: RunnableConfig | None, handler: RecordingHandler) -> RunnableConfig:
        return merge_configs(config, {"callbacks": [handler]})

    def _plan(self) -> CallPlan:
        plan = self.plan()
        if plan.gateway is not None and not self._al_warned:
            self._al_warned = True
            logger.warning(
                "agentlightning: an adapter serves agent %s on the platform; the LangChain wrapper cannot route"
                " its model through the platform's gateway: call the gateway with ChatOpenAI(base_url=...)",
                self.agent_id,
            )
        return plan

    def _begin(self, input: Any, plan: CallPlan) -> tuple[Rollout, bool, RecordingHandler]:
        rollout, owned = begin_call(self.recorder, agent_id=self.agent_id, input=input, metadata=plan.metadata)
        return rollout, owned, RecordingHandler(rollout, self.agent_id)

    # --- the runnable interface ------------------------------------------------------------------

    @contextlib.contextmanager
    def _recorded(self, input: Any, *, stream: bool = False) -> Iterator[_Call]:
        """One call of the wrapped runnable on ``input``, recorded: the body sets ``call.result``
        (for a ``stream``, the chunks so far); it is remembered and ends the rollout when the body
        ends, ends a failed rollout when the body raises, and ends it without remembering when a
        stream is closed early."""
        plan = self._plan()
        rollout, owned, handler = self._begin(input, plan)
        call = _Call(handler, plan.resources)
        try:
            yield call
            self._remember(input, call.result)
        except BaseException as exc:
            if stream and isinstance(exc, GeneratorExit):
                end_call(rollout, owned, output=_content(call.result))
            else:
                end_call(rollout, owned, failed=True)
            raise
        end_call(rollout, owned, output=_content(call.result))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """``runnable.invoke``, recorded as one rollout (or into the current one)."""
        with self._recorded(input) as call:
            call.result = self._runnable(call.resources).invoke(
                self._prepare(input), self._config(config, call.handler), **kwargs
            )
        return call.result

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """``runnable.ainvoke``, recorded as one rollout (or into the current one)."""
        with self._recorded(input) as call:
            call.result = await self._runnable(call.resources).ainvoke(
                self._prepare(input), self._config(config, call.handler), **kwargs
            )
        return call.result

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """``runnable.stream``: the same chunks; recorded when the stream ends or is closed."""
        with self._recorded(input, stream=True) as call:
            for chunk in self._runnable(call.resources).stream(
                self._prepare(input), self._config(config, call.handler), **kwargs
            ):
                call.add(chunk)
                yield chunk

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        """``runnable.astream``: the same chunks; recorded when the stream ends or is closed."""
        with self._recorded(input, stream=True) as call:
            async for chunk in self._runnable(call.resources).astream(
                self._prepare(input), self._config(config, call.handler), **kwargs
            ):
                call.add(chunk)
                yield chunk

    def _batch_parts(
        self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None, plan: CallPlan
    ) -> tuple[list[tuple[Rollout, bool]], list[RunnableConfig]]:
        configs = config if isinstance(config, list) else [config or {}] * len(inputs)
        calls, merged = [], []
        for item, item_config in zip(inputs, configs):
            rollout, owned, handler = self._begin(item, plan)
            calls.append((rollout, owned))
            merged.append(self._config(item_config, handler))
        return calls, merged

    def _batch_done(self, inputs: list[Any], results: list[Any], calls: list[tuple[Rollout, bool]]) -> None:
        for item, result, (rollout, owned) in zip(inputs, results, calls):
            if isinstance(result, Exception):
                end_call(rollout, owned, failed=True)
            else:
                self._remember(item, result)
                end_call(rollout, owned, output=_content(result))

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """``runnable.batch``: one rollout per input (or all in the current one)."""
        plan = self._plan()  # one runnable for the batch: its inputs share one variant
        calls, configs = self._batch_parts(inputs, config, plan)
        try:
            results = self._runnable(plan.resources).batch(
                [self._prepare(i) for i in inputs], configs, return_exceptions=return_exceptions, **kwargs
            )
        except BaseException:
            for rollout, owned in calls:
                end_call(rollout, owned, failed=True)
            raise
        self._batch_done(inputs, results, calls)
        return results

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """``runnable.abatch``: one rollout per input (or all in the current one)."""
        plan = self._plan()  # one runnable for the batch: its inputs share one variant
        calls, configs = self._batch_parts(inputs, config, plan)
        try:
            results = await self._runnable(plan.resources).abatch(
                [self._prepare(i) for i in inputs], configs, return_exceptions=return_exceptions, **kwargs
            )
        except BaseException:
            for rollout, owned in calls:
                end_call(rollout, owned, failed=True)
            raise
        self._batch_done(inputs, results, calls)
        return results


class _Call:
    """One recorded call in progress: its callback handler and its result (or chunks so far)."""

    def __init__(self, handler: RecordingHandler, resources: AgentResources | None) -> None:
        self.handler = handler
        self.resources = resources
        self.result: Any = None

    def add(self, chunk: Any) -> None:
        """Add a streamed chunk to the result."""
        self.result = chunk if self.result is None else _add(self.result, chunk)


def _content(result: Any) -> Any:
    """What a rollout records as a call's output: a message's content, else the result itself."""
    return getattr(result, "content", result)


def _add(total: Any, chunk: Any) -> Any:
    try:
        return total + chunk
    except TypeError:
        return chunk
