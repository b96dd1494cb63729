"""Promotions and rollbacks of agents' resources: the one writer of ``auto_rl_promotions``.

A promotion lays the candidate's resources over the agent row through
:class:`~agentlightning.agents.service.AgentService` (``system_prompt``, ``model``, ``temperature``,
``tools``, ``adapter``, ``variant``) and bumps ``config.resources_version``; the runtime, the SDK and
the gateway all read the promoted resources from there. A rollback restores the resources from
before the latest promotion still in force (as a new version: versions only grow).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from agentlightning.agents.service import AgentService
from agentlightning.errors import Conflict, NotFound
from agentlightning.observability.metrics import RL_PERFORMANCE_GAIN
from agentlightning.rl.auto.evaluator import resources_of, resources_version
from agentlightning.rl.auto.gate import GateDecision
from agentlightning.rl.optimisers.base import AgentResources
from agentlightning.storage.models import AutoRLPromotion
from agentlightning.storage.types import utcnow

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

__all__ = ["HistoryService", "promotion_dict", "set_gain"]

log = logging.getLogger(__name__)
#: Agents with a gain series, oldest first (the gauge's label set is bounded).
_GAIN_LABELS: dict[str, None] = {}


def set_gain(agent_id: int, gain_pp: float, limit: int) -> None:
    """Set ``rl_performance_gain_percent{agent_id}``, keeping at most ``limit`` agents' series."""
    label = str(agent_id)
    _GAIN_LABELS.pop(label, None)
    _GAIN_LABELS[label] = None
    RL_PERFORMANCE_GAIN.labels(agent_id=label).set(gain_pp)
    while len(_GAIN_LABELS) > limit:
        oldest = next(iter(_GAIN_LABELS))
        _GAIN_LABELS.pop(oldest)
        try:
            RL_PERFORMANCE_GAIN.remove(oldest)
        except KeyError:
            pass


def promotion_dict(row: AutoRLPromotion) -> dict[str, Any]:
    """The API representation of a promotion or rollback."""
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "kind": row.kind,
        "experiment_id": row.experiment_id,
        "trigger_id": row.trigger_id,
        "before": row.before,
        "after": row.after,
        "version_before": row.version_before,
        "version_after": row.version_after,
        "incumbent_score": row.incumbent_score,
        "candidate_score": row.candidate_score,
        "p_value": row.p_value,
        "n_heldout": row.n_heldout,
        "gain_pp": row.gain_pp,
        "rolled_back_at": row.rolled_back_at,
        "created_by": row.created_by,
        "comment": row.comment,
        "created_at": row.created_at,
    }


def _config_change(resources: AgentResources, version: int) -> dict[str, Any]:
    """The agent ``config`` update that installs ``resources`` (null removes a key)."""
    return {
        "system_prompt": resources.system_prompt,
        "model": resources.model,
        "temperature": resources.temperature,
        "tools": list(resources.tools) if resources.tools is not None else None,
        "adapter": resources.adapter,
        "variant": resources.variant,
        "resources_version": version,
    }


class HistoryService:
    """Promotes gated candidates, rolls them back, and reads the history."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def promote(
        self,
        agent_id: int,
        candidate: AgentResources,
        decision: GateDecision,
        *,
        expected_config_version: int,
        experiment_id: int | None,
        trigger_id: int | None,
        actor: str | None,
    ) -> dict[str, Any]:
        """Install ``candidate`` when ``decision`` says so and the agent is still at ``expected_config_version``.

        ``expected_config_version`` is the agent's ``config_version`` when the run read its
        incumbent: any edit of the agent since (a user's, another promotion, a rollback) bumps it,
        and the promotion is refused (``Conflict("RESOURCES_CHANGED")``) rather than laid over the
        edit. The check and the write are one ``UPDATE ... WHERE config_version = :expected``, in
        the same transaction as the history row, so either both land or neither does.
        """
        if not decision.promote:
            raise Conflict("PROMOTION_REFUSED", "The gate did not find a significant win", details=decision.as_dict())
        agents = AgentService(self.ctx)
        async with self.ctx.db.session() as s:
            # Read at any version: if it is not the expected one, the compare-and-set below refuses.
            row_before = await agents.profile(agent_id)
            before = resources_of(row_before)
            version = resources_version(row_before.config)
            await agents.update_config_if_version(
                s, agent_id, _config_change(candidate, version + 1), expected_version=expected_config_version
            )
            row = AutoRLPromotion(
                agent_id=agent_id,
                kind="promotion",
                experiment_id=experiment_id,
                trigger_id=trigger_id,
                before=before.as_dict(),
                after=candidate.as_dict(),
                version_before=version,
                version_after=version + 1,
                incumbent_score=decision.incumbent_score,
                candidate_score=decision.candidate_score,
                p_value=decision.p_value,
                n_heldout=decision.n,
                gain_pp=decision.gain_pp,
                created_by=actor,
            )
            s.add(row)
            await s.commit()
            data = promotion_dict(row)
        await agents.changed(agent_id)
        set_gain(agent_id, decision.gain_pp, self.ctx.settings.auto_rl_gain_label_limit)
        await self.ctx.events.publish(
            "training",
            "training_update",
            {"change": "promoted", "agent_id": agent_id, "experiment_id": experiment_id, "gain_pp": decision.gain_pp},
        )
        return data

    async def rollback(self, agent_id: int, *, actor: str, comment: str | None = None) -> dict[str, Any]:
        """Restore the resources from before the agent's latest promotion still in force.

        Like a promotion, the restore is a compare-and-set on the agent's ``config_version`` in the
        same transaction as the history rows: an edit landing meanwhile makes it a 409
        ``RESOURCES_CHANGED`` (try again), never a lost edit.
        """
        agents = AgentService(self.ctx)
        profile = await agents.profile(agent_id)
        async with self.ctx.db.session() as s:
            last = await s.scalar(
                select(AutoRLPromotion)
                .where(
                    AutoRLPromotion.agent_id == agent_id,
                    AutoRLPromotion.kind == "promotion",
                    AutoRLPromotion.rolled_back_at.is_(None),
                )
                .order_by(AutoRLPromotion.id.desc())
                .limit(1)
            )
            if last is None:
                raise NotFound(
                    "NO_PROMOTION_TO_ROLL_BACK",
                    f"Agent {agent_id} has no Auto-RL promotion in force",
                    details={"agent_id": agent_id},
                )
            version = resources_version(profile.config)
            current = resources_of(profile)
            restored = AgentResources.from_dict(last.before)
            await agents.update_config_if_version(
                s, agent_id, _config_change(restored, version + 1), expected_version=profile.config_version
            )
            marked = await s.execute(
                update(AutoRLPromotion)
                .where(AutoRLPromotion.id == last.id, AutoRLPromotion.rolled_back_at.is_(None))
                .values(rolled_back_at=utcnow())
            )
            if int(getattr(marked, "rowcount", 0) or 0) != 1:  # a concurrent rollback took it
                raise Conflict(
                    "RESOURCES_CHANGED",
                    f"Promotion {last.id} of agent {agent_id} was rolled back meanwhile",
                    details={"agent_id": agent_id, "promotion_id": last.id},
                )
            row = AutoRLPromotion(
                agent_id=agent_id,
                kind="rollback",
                experiment_id=last.experiment_id,
                trigger_id=last.trigger_id,
                before=current.as_dict(),
                after=restored.as_dict(),
                version_before=version,
                version_after=version + 1,
                incumbent_score=last.candidate_score,
                candidate_score=last.incumbent_score,
                created_by=actor,
                comment=comment or f"rollback of promotion {last.id}",
            )
            s.add(row)
            await s.commit()
            data = promotion_dict(row)
        await agents.changed(agent_id)
        previous = await self.gain_in_force(agent_id)
        set_gain(agent_id, previous or 0.0, self.ctx.settings.auto_rl_gain_label_limit)
        return data

    async def gain_in_force(self, agent_id: int) -> float | None:
        """The gain of the agent's latest promotion not rolled back, if any."""
        async with self.ctx.db.session() as s:
            return await s.scalar(
                select(AutoRLPromotion.gain_pp)
                .where(
                    AutoRLPromotion.agent_id == agent_id,
                    AutoRLPromotion.kind == "promotion",
                    AutoRLPromotion.rolled_back_at.is_(None),
                )
                .order_by(AutoRLPromotion.id.desc())
                .limit(1)
            )

    async def for_experiment(self, experiment_id: int) -> dict[str, Any] | None:
        """The promotion an experiment made, if any (a re-run after a restart does not promote twice)."""
        async with self.ctx.db.session() as s:
            row = await s.scalar(
                select(AutoRLPromotion).where(
                    AutoRLPromotion.experiment_id == experiment_id, AutoRLPromotion.kind == "promotion"
                )
            )
            return promotion_dict(row) if row is not None else None

    async def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest promotions and rollbacks, newest first."""
        async with self.ctx.db.session() as s:
            rows = await s.scalars(select(AutoRLPromotion).order_by(AutoRLPromotion.id.desc()).limit(limit))
            return [promotion_dict(r) for r in rows]

    async def counts(self) -> dict[int, dict[str, int]]:
        """Per agent: promotions and rollbacks."""
        async with self.ctx.db.session() as s:
            rows = await s.execute(
                select(AutoRLPromotion.agent_id, AutoRLPromotion.kind, func.count()).group_by(
                    AutoRLPromotion.agent_id, AutoRLPromotion.kind
                )
            )
            out: dict[int, dict[str, int]] = {}
            for agent_id, kind, n in rows:
                out.setdefault(agent_id, {"promotion": 0, "rollback": 0})[kind] = int(n)
            return out

    async def restore_gauges(self) -> None:
        """At start-up: set ``rl_performance_gain_percent`` from the promotions in force (most recent agents)."""
        limit = self.ctx.settings.auto_rl_gain_label_limit
        async with self.ctx.db.session() as s:
            rows = list(
                await s.execute(
                    select(AutoRLPromotion.agent_id, AutoRLPromotion.gain_pp)
                    .where(AutoRLPromotion.kind == "promotion", AutoRLPromotion.rolled_back_at.is_(None))
                    .order_by(AutoRLPromotion.id.desc())
                    .limit(limit * 5)
                )
            )
        latest: dict[int, float] = {}
        for agent_id, gain in rows:
            if agent_id not in latest and len(latest) < limit:
                latest[agent_id] = float(gain or 0.0)
        for agent_id, gain in reversed(list(latest.items())):
            set_gain(agent_id, gain, limit)
