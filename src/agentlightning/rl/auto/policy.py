"""Per-agent Auto-RL policies: the one writer of ``auto_rl_policies``.

An agent's effective policy is the system configuration's ``auto_rl`` block with the agent's own
overrides on top (a null column follows the system default, so changing the system default moves
every agent that did not override it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from agentlightning.core.system_config import get_config
from agentlightning.errors import ValidationFailed
from agentlightning.rl.auto.schemas import PolicyPublic
from agentlightning.storage.models import AutoRLPolicy
from agentlightning.storage.types import utcnow

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext
    from agentlightning.rl.auto.schemas import PolicyUpdate

__all__ = ["EffectivePolicy", "PolicyService"]

_OVERRIDABLE = (
    "enabled",
    "window",
    "min_samples",
    "success_threshold",
    "cooldown_minutes",
    "algorithm",
    "max_evaluations",
    "max_wall_seconds",
    "alpha",
)


#: An agent's effective policy is what the API shows: one model, not a copy of its fields.
EffectivePolicy = PolicyPublic


class PolicyService:
    """Reads and changes agents' Auto-RL policies."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def get(self, agent_id: int) -> EffectivePolicy:
        """The effective policy of one agent (the agent must exist: callers check)."""
        return (await self.many([agent_id]))[agent_id]

    async def many(self, agent_ids: list[int]) -> dict[int, EffectivePolicy]:
        """Effective policies of several agents at once."""
        defaults = (await get_config(self.ctx)).auto_rl
        async with self.ctx.db.session() as s:
            rows = {
                r.agent_id: r for r in await s.scalars(select(AutoRLPolicy).where(AutoRLPolicy.agent_id.in_(agent_ids)))
            }
        out: dict[int, EffectivePolicy] = {}
        for agent_id in agent_ids:
            row = rows.get(agent_id)
            values: dict[str, Any] = {name: getattr(defaults, name) for name in _OVERRIDABLE}
            overrides: list[str] = []
            if row is not None:
                for name in _OVERRIDABLE:
                    value = getattr(row, name)
                    if value is not None:
                        values[name] = value
                        overrides.append(name)
            options = dict(row.options or {}) if row is not None else {}
            if options:
                overrides.append("options")
            out[agent_id] = EffectivePolicy(
                agent_id=agent_id,
                train_tasks=defaults.train_tasks,
                heldout_tasks=defaults.heldout_tasks,
                options=options,
                overrides=overrides,
                updated_by=row.updated_by if row is not None else None,
                updated_at=row.updated_at if row is not None else None,
                **values,
            )
        return out

    async def read(self, agent_id: int) -> EffectivePolicy:
        """The effective policy of an existing agent (404 ``AGENT_NOT_FOUND`` otherwise)."""
        from agentlightning.agents.service import AgentService

        agent = await AgentService(self.ctx).get(agent_id)
        return await self.get(agent.id)

    async def update(self, agent_id: int, body: PolicyUpdate, *, actor: str) -> EffectivePolicy:
        """Apply a partial update (explicit nulls reset a field to the system default)."""
        from agentlightning.agents.service import AgentService
        from agentlightning.rl.auto.triggers import experiment_config

        await AgentService(self.ctx).get(agent_id)
        changes = body.model_dump(exclude_unset=True)
        if changes.get("options"):
            try:
                experiment_config(changes["options"])
            except ValueError as exc:
                raise ValidationFailed(
                    "VALIDATION_ERROR",
                    f"Invalid policy options: {exc}",
                    details={"errors": [{"field": "body.options", "message": str(exc)[:500]}]},
                ) from exc
        async with self.ctx.db.session() as s:
            row = await s.get(AutoRLPolicy, agent_id)
            if row is None:
                row = AutoRLPolicy(agent_id=agent_id, options={})
                s.add(row)
            for name, value in changes.items():
                if name == "options":
                    row.options = dict(value or {})
                else:
                    setattr(row, name, value)
            row.updated_by = actor
            row.updated_at = utcnow()
            await s.commit()
        return await self.get(agent_id)
