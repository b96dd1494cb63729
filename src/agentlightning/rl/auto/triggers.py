"""Starting Auto-RL optimisations: the one writer of ``auto_rl_triggers``.

A trigger (from the monitor or by hand) creates an agent-optimisation experiment through
:class:`~agentlightning.rl.experiments.ExperimentService` (the one writer of experiments) with the
agent's policy as its budget, and records why it started and, later, how it ended.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from agentlightning.errors import Conflict
from agentlightning.rl.auto.policy import PolicyService
from agentlightning.rl.auto.schemas import AgentExperimentConfig, AgentExperimentCreate
from agentlightning.storage.models import AutoRLTrigger, RLExperiment
from agentlightning.storage.types import utcnow
from agentlightning.vocabulary import EXPERIMENT_TERMINAL, AutoRLOutcome, AutoRLReason

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

__all__ = ["TriggerService", "trigger_dict"]


def trigger_dict(row: AutoRLTrigger) -> dict[str, Any]:
    """The API representation of a trigger."""
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "experiment_id": row.experiment_id,
        "reason": row.reason,
        "algorithm": row.algorithm,
        "outcome": row.outcome,
        "n": row.n,
        "success_rate": row.success_rate,
        "mean_reward": row.mean_reward,
        "triggered_by": row.triggered_by,
        "decision": row.decision or {},
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


#: Keys of a policy's ``options`` that choose the tasks (the rest go to the optimiser).
TASK_KEYS = ("suite", "task_types", "train", "heldout", "train_tasks", "heldout_tasks")


def experiment_config(options: dict[str, Any]) -> AgentExperimentConfig:
    """The experiment config of a triggered run: task selection from ``options``, the rest for the optimiser."""
    tasks = {k: v for k, v in options.items() if k in TASK_KEYS}
    rest = {k: v for k, v in options.items() if k not in TASK_KEYS}
    return AgentExperimentConfig.model_validate({**tasks, "options": rest})


class TriggerService:
    """Starts optimisations and records their outcome."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def reconcile(self) -> None:
        """End running triggers whose experiment ended without telling (e.g. stopped while still queued)."""
        async with self.ctx.db.session() as s:
            stale = list(
                await s.execute(
                    select(AutoRLTrigger.id, RLExperiment.status)
                    .join(RLExperiment, RLExperiment.id == AutoRLTrigger.experiment_id)
                    .where(AutoRLTrigger.outcome == "running", RLExperiment.status.in_(tuple(EXPERIMENT_TERMINAL)))
                )
            )
        for trigger_id, status in stale:
            await self.finish_trigger(trigger_id, "failed" if status == "failed" else "stopped", {"experiment": status})

    async def in_flight(self, agent_id: int) -> bool:
        """True while an Auto-RL optimisation of the agent has not ended."""
        await self.reconcile()
        async with self.ctx.db.session() as s:
            found = await s.scalar(
                select(AutoRLTrigger.id).where(AutoRLTrigger.agent_id == agent_id, AutoRLTrigger.outcome == "running")
            )
        return found is not None

    async def last_trigger_at(self, agent_id: int) -> datetime | None:
        """When the agent was last triggered."""
        async with self.ctx.db.session() as s:
            return await s.scalar(select(func.max(AutoRLTrigger.created_at)).where(AutoRLTrigger.agent_id == agent_id))

    async def trigger(
        self,
        agent_id: int,
        *,
        reason: AutoRLReason,
        actor: str | None,
        algorithm: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start an optimisation of ``agent_id`` (409 ``AUTO_RL_RUNNING`` if one is in flight)."""
        from agentlightning.agents.service import AgentService
        from agentlightning.rl.experiments import ExperimentService

        agents = AgentService(self.ctx)
        await agents.get(agent_id)  # 404 AGENT_NOT_FOUND
        await self.reconcile()  # a trigger whose experiment ended no longer counts as running
        policy = await PolicyService(self.ctx).get(agent_id)
        algo = algorithm or policy.algorithm
        stats = stats or {}
        row = AutoRLTrigger(
            agent_id=agent_id,
            reason=reason,
            algorithm=algo,
            outcome="running",
            n=int(stats.get("n") or 0),
            success_rate=stats.get("success_rate"),
            mean_reward=stats.get("mean_reward"),
            triggered_by=actor,
            decision={},
        )
        # The check "nothing running for this agent" and the insert are one statement: the unique
        # partial index ``uq_auto_rl_triggers_running`` refuses a second running row of an agent,
        # so of two concurrent triggers exactly one starts a run.
        async with self.ctx.db.session() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                if await self.in_flight(agent_id):
                    raise self._running(agent_id) from None
                await agents.get(agent_id)  # deleted meanwhile: 404 AGENT_NOT_FOUND
                raise
            trigger_id = row.id
        request = AgentExperimentCreate(
            name=f"auto-rl-agent{agent_id}-{trigger_id}-{utcnow().strftime('%Y%m%d%H%M%S')}",
            algorithm=algo,
            agent_id=agent_id,
            config=experiment_config(policy.options),
        )
        try:
            experiment = await ExperimentService(self.ctx).create_agent(
                request, created_by=actor if reason == "manual" else None, trigger_id=trigger_id
            )
        except Exception as exc:
            await self.finish_trigger(trigger_id, "failed", {"error": str(exc)})
            raise
        async with self.ctx.db.session() as s:
            await s.execute(
                update(AutoRLTrigger).where(AutoRLTrigger.id == trigger_id).values(experiment_id=experiment["id"])
            )
            await s.commit()
            fresh = await s.get(AutoRLTrigger, trigger_id)
            assert fresh is not None
            data = trigger_dict(fresh)
        return data

    @staticmethod
    def _running(agent_id: int) -> Conflict:
        return Conflict(
            "AUTO_RL_RUNNING",
            f"An Auto-RL optimisation of agent {agent_id} is already running",
            details={"agent_id": agent_id},
        )

    async def finish_trigger(self, trigger_id: int, outcome: AutoRLOutcome, decision: dict[str, Any]) -> None:
        """Record how a trigger ended (only once: a running trigger moves, an ended one stays)."""
        async with self.ctx.db.session() as s:
            await s.execute(
                update(AutoRLTrigger)
                .where(AutoRLTrigger.id == trigger_id, AutoRLTrigger.outcome == "running")
                .values(outcome=outcome, decision=decision, finished_at=utcnow())
            )
            await s.commit()

    async def experiment_ended(self, experiment_id: int, status: str, error: str | None = None) -> None:
        """The manager's hook: a stopped or failed experiment ends its trigger the same way."""
        outcome: AutoRLOutcome = "failed" if status == "failed" else "stopped"
        if status == "completed":
            outcome = "rejected"  # the job records promoted/rejected itself; this is only a fallback
        async with self.ctx.db.session() as s:
            ids = list(await s.scalars(select(AutoRLTrigger.id).where(AutoRLTrigger.experiment_id == experiment_id)))
        for trigger_id in ids:
            await self.finish_trigger(trigger_id, outcome, {"error": error} if error else {})

    async def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest triggers, newest first."""
        async with self.ctx.db.session() as s:
            rows = await s.scalars(select(AutoRLTrigger).order_by(AutoRLTrigger.id.desc()).limit(limit))
            return [trigger_dict(r) for r in rows]

    async def counts(self) -> dict[int, dict[str, Any]]:
        """Per agent: triggers by outcome and the last trigger time."""
        await self.reconcile()
        async with self.ctx.db.session() as s:
            rows = await s.execute(
                select(
                    AutoRLTrigger.agent_id, AutoRLTrigger.outcome, func.count(), func.max(AutoRLTrigger.created_at)
                ).group_by(AutoRLTrigger.agent_id, AutoRLTrigger.outcome)
            )
            out: dict[int, dict[str, Any]] = {}
            for agent_id, outcome, n, last in rows:
                if agent_id is None:
                    continue
                entry = out.setdefault(agent_id, {"by_outcome": {}, "last": None})
                entry["by_outcome"][outcome] = int(n)
                if last is not None and (entry["last"] is None or last > entry["last"]):
                    entry["last"] = last
            return out
