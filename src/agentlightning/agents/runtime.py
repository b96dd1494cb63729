"""The agent loop: prompt + memory + task + context -> LLM -> tool calls -> ... -> final answer.

Every LLM call and tool call is a trace span (inputs, outputs, tokens, latency, errors) under a
root ``agent_run`` span, collected by the caller's :class:`TraceRecorder`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentlightning.agents.llm import ChatMessage, LLMError, LLMRequest, ProviderFactory
from agentlightning.agents.llm.base import ToolChoice
from agentlightning.agents.memory import ConversationMemory, NoteStore
from agentlightning.agents.profile import AgentProfile
from agentlightning.agents.tools.base import ToolContext
from agentlightning.agents.tools.registry import ToolRegistry, ToolResult
from agentlightning.agents.tracing import TraceRecorder
from agentlightning.rollouts.capture import model_visible_context

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

FINAL_ANSWER_PROMPT = "You have used all your tool steps. Give your final answer now, without calling tools."


def _tool_choice(configured: ToolChoice, step: int) -> ToolChoice:
    """The ``tool_choice`` of one LLM call: "required" holds for the first call only, "none" for all."""
    if configured == "required":
        return "required" if step == 0 else "auto"
    return configured


class AgentRunError(RuntimeError):
    """The run could not produce an answer (LLM failure, no output)."""


@dataclass(slots=True)
class RunResult:
    """What one run produced."""

    answer: str
    steps: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    provider: str = ""
    trace_id: str = ""
    step_limit_reached: bool = False

    def to_result(self) -> dict[str, Any]:
        """The JSON stored in ``tasks.result``."""
        return {
            "answer": self.answer,
            "steps": self.steps,
            "tool_calls": self.tool_calls,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "model": self.model,
            "provider": self.provider,
            "trace_id": self.trace_id,
            "step_limit_reached": self.step_limit_reached,
            "cached": False,
        }


class AgentRuntime:
    """Runs tasks for agents with the configured LLM providers and tools."""

    def __init__(self, ctx: AppContext, providers: ProviderFactory, tools: ToolRegistry) -> None:
        self.ctx = ctx
        self.providers = providers
        self.tools = tools
        self.memory = ConversationMemory(ctx.db)
        self.notes = NoteStore(ctx.db)

    async def build_messages(
        self,
        agent: AgentProfile,
        task: str,
        context: dict[str, Any],
        session_id: str | None,
        user: str | None = None,
    ) -> list[ChatMessage]:
        """System prompt (+ the user's recalled notes) + the user's session window + the task."""
        system = agent.system_prompt
        if "memory" in agent.tools:
            # Notes about the task's words, else the most recent ones.
            notes = await self.notes.recall(agent.id, user, task, limit=3) or await self.notes.recall(
                agent.id, user, None, limit=3
            )
            if notes:
                system += "\n\nNotes you saved earlier:\n" + "\n".join(f"- {n.content}" for n in notes)
        messages = [ChatMessage(role="system", content=system)]
        if session_id:
            window = int(agent.config.get("memory_window", self.ctx.settings.agent_memory_window))
            messages += await self.memory.window(agent.id, session_id, window, user)
        user = task
        context = model_visible_context(context)  # never the verifier's expected answer
        if context:
            user += "\n\nContext:\n" + json.dumps(context, ensure_ascii=False, default=str)
        messages.append(ChatMessage(role="user", content=user))
        return messages

    async def run(
        self,
        agent: AgentProfile,
        task: str,
        context: dict[str, Any] | None = None,
        *,
        recorder: TraceRecorder,
        task_id: int | None = None,
        session_id: str | None = None,
        user: str | None = None,
    ) -> RunResult:
        """Run the loop to a final answer; raises :class:`AgentRunError` when the LLM fails."""
        context = context or {}
        provider = self.providers.for_agent(agent.config)
        model = self.providers.model_for(agent.config)
        root = recorder.start(
            "agent_run",
            agent.name,
            {"task": task, "context": model_visible_context(context), "session_id": session_id},
        )
        root.attributes.update(config_version=agent.config_version, agent_type=agent.type)
        tool_ctx = ToolContext(
            settings=self.ctx.settings,
            app=self.ctx,
            agent_id=agent.id,
            task_id=task_id,
            session_id=session_id,
            user=user,
        )
        tool_specs = await self.tools.specs_now(tool_ctx, agent.tools)
        allowed = [t.name for t in tool_specs]
        max_steps = agent.max_steps or self.ctx.settings.agent_max_steps
        messages = await self.build_messages(agent, task, context, session_id, user)
        result = RunResult(answer="", steps=0, model=model, provider=provider.name, trace_id=recorder.trace_id)
        try:
            while True:
                final_turn = result.steps >= max_steps
                if final_turn:
                    messages.append(ChatMessage(role="user", content=FINAL_ANSWER_PROMPT))
                    result.step_limit_reached = True
                request = LLMRequest(
                    messages=list(messages),
                    model=model,
                    tools=[] if final_turn else tool_specs,
                    temperature=agent.temperature,
                    max_tokens=agent.max_tokens,
                    # config ``tool_choice``: "required" makes the first reply a tool call (then "auto")
                    tool_choice=_tool_choice(agent.tool_choice, result.steps) if tool_specs else "auto",
                )
                response = await self._call_llm(recorder, root, provider, request)
                result.steps += 1
                result.prompt_tokens += response.usage.prompt_tokens
                result.completion_tokens += response.usage.completion_tokens
                result.model = response.model or model
                if not response.tool_calls or final_turn:
                    result.answer = response.content.strip()
                    break
                messages.append(ChatMessage(role="assistant", content=response.content, tool_calls=response.tool_calls))
                for call in response.tool_calls:
                    span = recorder.start("tool", call.name, {"arguments": call.arguments}, parent=root)
                    if call.raw_arguments is not None:
                        outcome = ToolResult(
                            call.name, False, error=f"arguments are not a JSON object: {call.raw_arguments[:200]}"
                        )
                    else:
                        outcome = await self.tools.invoke(call.name, call.arguments, tool_ctx, allowed=allowed)
                    span.end(outcome.output, error=outcome.error)
                    result.tool_calls.append(
                        {
                            "name": call.name,
                            "arguments": call.arguments,
                            "ok": outcome.ok,
                            "error": outcome.error,
                            "latency_ms": round(outcome.latency_ms, 2),
                        }
                    )
                    messages.append(
                        ChatMessage(role="tool", content=outcome.for_model(), tool_call_id=call.id, name=call.name)
                    )
        except AgentRunError as exc:
            root.end(error=str(exc), steps=result.steps)
            raise
        if not result.answer:
            root.end(error="empty answer", steps=result.steps)
            raise AgentRunError("the model returned an empty answer")
        root.end(
            {"answer": result.answer},
            model=result.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            steps=result.steps,
        )
        if session_id:
            await self.memory.append(
                agent.id, session_id, [("user", task), ("assistant", result.answer)], user, task_id=task_id
            )
        return result

    async def _call_llm(self, recorder: TraceRecorder, root: Any, provider: Any, request: LLMRequest) -> Any:
        span = recorder.start(
            "llm",
            f"{provider.name}:{request.model}",
            {
                "messages": [m.to_openai() for m in request.messages],
                "tools": [t.name for t in request.tools],
                "temperature": request.temperature,
            },
            parent=root,
        )
        try:
            response = await provider.complete(request)
        except LLMError as exc:
            span.end(error=str(exc), model=request.model)
            raise AgentRunError(f"LLM call failed: {exc}") from exc
        span.end(
            {
                "content": response.content,
                "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in response.tool_calls],
                "finish_reason": response.finish_reason,
            },
            model=response.model,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
        )
        return response
