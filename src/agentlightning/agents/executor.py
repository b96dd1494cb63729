"""Runs one claimed task end to end: cache lookup, agent runtime, single write of the outcome
with its trace and rollout (and the verifier's reward), metrics.  Task events are stored and published by the scheduler with the state
change they announce (the outbox), never here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agentlightning.agents.llm import ProviderFactory
from agentlightning.agents.runtime import AgentRunError, AgentRuntime
from agentlightning.agents.scheduler import ClaimedTask, TaskScheduler
from agentlightning.agents.tools.registry import ToolRegistry, default_registry
from agentlightning.agents.tracing import TraceRecorder
from agentlightning.observability.metrics import AGENT_REQUESTS, AGENT_RESPONSE_TIME
from agentlightning.rl.optimisers.bandit_service import assign_variant, install_reward_listener
from agentlightning.rollouts.capture import TaskRollout
from agentlightning.rollouts.listeners import notify_reward_listeners
from agentlightning.rollouts.schemas import task_rollout_id
from agentlightning.storage import cache_keys

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

log = logging.getLogger(__name__)


def response_cache_key(task: ClaimedTask) -> str:
    """``agent:response:{agent_id}:{task_hash}``; the hash covers task, context and config version,
    and the user when the agent's answers draw on that user's memory notes."""
    key: dict[str, object] = {
        "task": task.description,
        "context": task.context,
        "config_version": task.agent.config_version,
    }
    if "memory" in task.agent.tools:
        key["user"] = task.created_by
    digest = cache_keys.stable_hash(key)
    return cache_keys.agent_response(task.agent.id, digest)


def is_trustworthy(result: dict[str, Any]) -> bool:
    """Whether a completed run's answer may be served again from the response cache.

    Only an answer the model finished by itself is: not one forced by the step limit, not one
    given after a tool call failed (its arithmetic, search or query was never checked).
    """
    calls = result.get("tool_calls") or []
    return not result.get("step_limit_reached") and all(call.get("ok", False) for call in calls)


class TaskExecutor:
    """Executes claimed tasks for a worker pool."""

    def __init__(
        self,
        ctx: AppContext,
        scheduler: TaskScheduler,
        providers: ProviderFactory | None = None,
        tools: ToolRegistry | None = None,
    ) -> None:
        self.ctx = ctx
        self.scheduler = scheduler
        self.providers = providers or ProviderFactory(ctx.settings)
        self.runtime = AgentRuntime(ctx, self.providers, tools or default_registry())
        install_reward_listener(ctx)  # agents running a bandit learn from their runs' rewards
        #: Tasks whose outcome is being stored.  Storing ends the lease (the row leaves ``running``),
        #: so a heartbeat in between sees it "lost"; the pool must not cancel such a run: the store
        #: checks the lease itself, and what follows it (reward listeners, metrics) must happen.
        self.storing: set[int] = set()

    def _cacheable(self, task: ClaimedTask) -> bool:
        return task.agent.cache_responses and not task.session_id and not task.context.get("no_cache")

    async def execute(self, task: ClaimedTask) -> str | None:
        """Run ``task``; returns its final status, or None when the lease was lost meanwhile."""
        task = await assign_variant(self.ctx, task)  # config.bandit: a variant chosen for this task
        agent_label = str(task.agent.id)
        started = time.perf_counter()
        recorder = TraceRecorder(task_id=task.id, agent_id=task.agent.id, rollout_id=task_rollout_id(task.id))
        cache_key = response_cache_key(task) if self._cacheable(task) else None
        try:
            result: dict[str, Any] | None = None
            if cache_key:
                cached = await self.ctx.cache.get_json(cache_key, stat="agent_response")
                if isinstance(cached, dict):
                    result = cached | {"cached": True}
            if result is None:
                run = await self.runtime.run(
                    task.agent,
                    task.description,
                    task.context,
                    recorder=recorder,
                    task_id=task.id,
                    session_id=task.session_id,
                    user=task.created_by,
                )
                result = run.to_result()
            return await self._completed(task, result, recorder, started, cache_key, agent_label)
        except asyncio.CancelledError:
            raise
        except AgentRunError as exc:
            await self._flush(recorder)
            return await self._failed(task, str(exc), retryable=True, started=started)
        except Exception as exc:  # noqa: BLE001 - any bug fails the task with its reason, never the worker
            log.exception("task %s crashed", task.id)
            await self._flush(recorder)
            return await self._failed(task, f"{type(exc).__name__}: {exc}", retryable=False, started=started)
        finally:
            await self._flush(recorder)  # a cancelled run still leaves its partial trace

    async def _completed(
        self,
        task: ClaimedTask,
        result: dict[str, Any],
        recorder: TraceRecorder,
        started: float,
        cache_key: str | None,
        agent_label: str,
    ) -> str | None:
        """Store a finished run's outcome (trace, rollout, reward) and tell the reward listeners."""
        with self._storing(task.id):
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            # The trace is stored with the result (one transaction): a completed task has its trace.
            spans = recorder.rows()
            recorder.spans.clear()
            # The run's rollout (and its verifier reward) is written with the outcome too.
            rollout = TaskRollout.build(
                task_id=task.id,
                agent_id=task.agent.id,
                description=task.description,
                context=task.context,
                status="completed",
                answer=str(result.get("answer", "")),
                trace_id=str(result.get("trace_id") or recorder.trace_id),
                extra_metadata=_rollout_metadata(task, result),
            )
            if not await self.scheduler.complete(
                task, result, elapsed_ms, spans, summary=_summary(result), rollout=rollout
            ):
                log.info("task %s: lease lost before completion; result discarded", task.id)
                return None
            reward = rollout.event()
            if reward is not None:
                # Shielded: once the outcome is stored the lease is gone, and the pool may cancel
                # this run at any moment; the listeners (the bandit's posterior) must still hear it.
                await asyncio.shield(notify_reward_listeners([reward], scope=self.ctx))
            AGENT_REQUESTS.labels(agent_id=agent_label, status="completed").inc()
            AGENT_RESPONSE_TIME.labels(agent_id=agent_label).observe(elapsed_ms / 1000)
            if cache_key and not result.get("cached") and is_trustworthy(result):
                await self.ctx.cache.set_json(cache_key, result, cache_keys.AGENT_RESPONSE_TTL)
            await self.ctx.cache.delete(cache_keys.agent_status(task.agent.id))
            return "completed"

    async def _flush(self, recorder: TraceRecorder) -> None:
        """Persist the spans collected so far (shielded from cancellation; errors are logged)."""
        if not recorder.spans:
            return  # already written with the outcome: no task to shield
        try:
            await asyncio.shield(recorder.flush(self.ctx.db))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - tracing must not change the task's outcome
            log.exception("task %s: writing trace spans failed", recorder.task_id)

    @contextlib.contextmanager
    def _storing(self, task_id: int) -> Iterator[None]:
        """Mark ``task_id`` as storing its outcome while the block runs (see :attr:`storing`)."""
        self.storing.add(task_id)
        try:
            yield
        finally:
            self.storing.discard(task_id)

    async def _failed(self, task: ClaimedTask, error: str, *, retryable: bool, started: float) -> str | None:
        """Store a failed run's outcome (retried or final) with its rollout."""
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        rollout = TaskRollout.build(
            task_id=task.id,
            agent_id=task.agent.id,
            description=task.description,
            context=task.context,
            status="failed",
            error=error[:4000],
            extra_metadata=_rollout_metadata(task, {}),
        )
        with self._storing(task.id):
            status = await self.scheduler.fail(
                task, error, retryable=retryable, execution_ms=elapsed_ms, rollout=rollout
            )
            if status == "failed":
                AGENT_REQUESTS.labels(agent_id=str(task.agent.id), status="failed").inc()
                AGENT_RESPONSE_TIME.labels(agent_id=str(task.agent.id)).observe(elapsed_ms / 1000)
                await self.ctx.cache.delete(cache_keys.agent_status(task.agent.id))
            elif status == "pending":
                AGENT_REQUESTS.labels(agent_id=str(task.agent.id), status="retried").inc()
            return status

    def count_reaped(self, failed: list[dict[str, Any]]) -> None:
        """Count tasks the reaper failed after their last lease expired (their events are stored
        and published by the scheduler)."""
        for data in failed:
            AGENT_REQUESTS.labels(agent_id=str(data.get("agent_id")), status="failed").inc()


def _rollout_metadata(task: ClaimedTask, result: dict[str, Any]) -> dict[str, Any]:
    """What a task's rollout records about the run besides its context's variant and task type."""
    meta: dict[str, Any] = {"config_version": task.agent.config_version, "attempts": task.attempts}
    if result.get("cached"):
        meta["cached"] = True
    if result.get("model"):
        meta["model"] = result["model"]
    return meta


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    answer = str(result.get("answer", ""))
    return {
        "answer": answer[:2000],
        "cached": bool(result.get("cached")),
        "steps": result.get("steps"),
        "usage": result.get("usage"),
    }
