"""Runs an agent in-process with candidate resources on verifiable tasks and scores the answers.

Nothing is written to production tables: no task rows, no spans (the trace recorder is never
flushed), no conversation memory (no session). The agent's own configuration (provider, tools,
step limit, ...) is used with the candidate's resources laid over it, exactly as a promotion would
lay them over the agent row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentlightning.agents.llm import ChatMessage, LLMRequest, ProviderFactory
from agentlightning.agents.profile import AgentProfile
from agentlightning.agents.runtime import AgentRunError, AgentRuntime
from agentlightning.agents.tools.registry import default_registry
from agentlightning.agents.tracing import TraceRecorder
from agentlightning.rl.optimisers.base import AgentResources, Observation, VerifiableTask

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

__all__ = ["AgentEvaluator", "LLMCritic", "apply_resources", "resources_of", "resources_version"]

log = logging.getLogger(__name__)


def resources_version(config: Mapping[str, Any]) -> int:
    """``config.resources_version`` of an agent (1 until a first promotion)."""
    try:
        return max(1, int(config.get("resources_version") or 1))
    except (TypeError, ValueError):
        return 1


def resources_of(profile: AgentProfile) -> AgentResources:
    """The promoted resources of an agent, read from its row (as ``AgentService.resources`` does)."""
    config = profile.config
    tools = config.get("tools")
    return AgentResources(
        system_prompt=profile.system_prompt,
        model=config.get("model"),
        temperature=float(config["temperature"]) if config.get("temperature") is not None else None,
        tools=tuple(str(t) for t in tools) if tools is not None else None,
        adapter=config.get("adapter"),
        variant=config.get("variant"),
    )


def apply_resources(config: Mapping[str, Any], resources: AgentResources) -> dict[str, Any]:
    """An agent config with ``resources`` laid over it (a None field keeps the agent's own value)."""
    out = dict(config)
    out["system_prompt"] = resources.system_prompt
    for key in ("model", "temperature", "adapter", "variant"):
        value = getattr(resources, key)
        if value is not None:
            out[key] = value
    if resources.tools is not None:
        out["tools"] = list(resources.tools)
    return out


def _score(verifier: Mapping[str, Any], answer: str) -> float:
    from agentlightning.rollouts.verifiers import verify

    return float(verify(verifier, answer).score)


class AgentEvaluator:
    """The ``evaluate`` of an :class:`~agentlightning.rl.optimisers.base.OptimiserContext`.

    It owns the LLM clients its runs use (:attr:`providers`, which the job's critic shares);
    :meth:`aclose` closes them when the job ends.
    """

    def __init__(self, ctx: AppContext, profile: AgentProfile, *, concurrency: int | None = None) -> None:
        self.ctx = ctx
        self.profile = profile
        self.providers = ProviderFactory(ctx.settings)
        self.runtime = AgentRuntime(ctx, self.providers, default_registry())
        self.semaphore = asyncio.Semaphore(concurrency or ctx.settings.auto_rl_eval_concurrency)
        #: Agent runs made so far (the budget counts them).
        self.evaluations = 0

    def profile_with(self, resources: AgentResources) -> AgentProfile:
        """The agent as it would be with ``resources`` promoted."""
        p = self.profile
        return AgentProfile(
            id=p.id,
            name=p.name,
            type=p.type,
            config=apply_resources(p.config, resources),
            config_version=p.config_version,
            status=p.status,
        )

    async def run_one(self, profile: AgentProfile, task: VerifiableTask) -> Observation:
        """Run one task and score its answer; a failed run scores 0."""
        async with self.semaphore:
            self.evaluations += 1
            started = time.perf_counter()
            recorder = TraceRecorder(task_id=None, agent_id=profile.id)
            try:
                result = await self.runtime.run(profile, task.prompt, dict(task.context or {}), recorder=recorder)
            except AgentRunError as exc:
                log.info("evaluation of task %s failed: %s", task.id, exc)
                max_steps = profile.max_steps or self.ctx.settings.agent_max_steps
                return Observation(
                    reward=0.0,
                    tool_calls=tuple(s.name for s in recorder.spans if s.kind == "tool"),
                    error=str(exc),
                    step_limit_reached=sum(s.kind == "llm" for s in recorder.spans) > max_steps,
                )
        try:
            score = max(0.0, min(1.0, _score(task.verifier, result.answer)))
        except Exception:  # noqa: BLE001 - a broken verifier spec scores 0, never ends the run
            log.exception("verifier of task %s failed", task.id)
            score = 0.0
        log.debug(
            "task %s scored %.2f in %.1f s: %r", task.id, score, time.perf_counter() - started, result.answer[:80]
        )
        return Observation(
            reward=score,
            answer=result.answer,
            tool_calls=tuple(str(c["name"]) for c in result.tool_calls),
            step_limit_reached=result.step_limit_reached,
        )

    async def observe(self, resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[Observation]:
        """What the agent with ``resources`` answered on each task and its reward, in order."""
        profile = self.profile_with(resources)
        return list(await asyncio.gather(*(self.run_one(profile, t) for t in tasks)))

    async def __call__(self, resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[float]:
        """One reward in [0, 1] per task, in order."""
        return [o.reward for o in await self.observe(resources, tasks)]

    async def aclose(self) -> None:
        """Close the LLM clients (pooled HTTP connections) the runs and the critic used."""
        await self.providers.aclose()


class LLMCritic:
    """The ``critic``: the LLM that serves the agent (its provider), answering a list of messages.

    ``providers`` are the clients it calls through (the evaluator's, closed with it); without them
    it builds its own.
    """

    def __init__(
        self,
        ctx: AppContext,
        profile: AgentProfile,
        *,
        temperature: float = 0.7,
        providers: ProviderFactory | None = None,
    ) -> None:
        self.providers = providers or ProviderFactory(ctx.settings)
        self.config = dict(profile.config)
        self.temperature = temperature

    async def __call__(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The model's reply text."""
        provider = self.providers.for_agent(self.config)
        request = LLMRequest(
            messages=[ChatMessage(role=m["role"], content=m["content"]) for m in messages],  # type: ignore[arg-type]
            model=self.providers.model_for(self.config),
            temperature=self.temperature,
            max_tokens=1024,
        )
        response = await provider.complete(request)
        return response.content
