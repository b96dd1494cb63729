"""What ``GET /api/v2/rl/auto-status`` reports: per agent and for Auto-RL as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentlightning.agents.service import AgentService
from agentlightning.core.system_config import get_config
from agentlightning.rl.auto.evaluator import resources_version
from agentlightning.rl.auto.history import HistoryService
from agentlightning.rl.auto.policy import PolicyService
from agentlightning.rl.auto.triggers import TriggerService

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

__all__ = ["AutoRLStatusService"]

_FINISHED = ("promoted", "rejected", "failed", "stopped")


class AutoRLStatusService:
    """Builds the Auto-RL status report."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def status(self, *, max_agents: int = 200) -> dict[str, Any]:
        """Per agent: window statistics, triggers, promotions and gain; overall: counts and success."""
        from agentlightning.rl.auto.monitor import window_stats

        agents, _ = await AgentService(self.ctx).list(page=1, page_size=max_agents)
        ids = [a["id"] for a in agents]
        policies = await PolicyService(self.ctx).many(ids) if ids else {}
        trigger_counts = await TriggerService(self.ctx).counts()
        history = HistoryService(self.ctx)
        change_counts = await history.counts()
        rows = []
        for agent in agents:
            agent_id = agent["id"]
            policy = policies[agent_id]
            try:
                stats = await window_stats(self.ctx, agent_id, policy.window)
            except ImportError:
                stats = {"n": 0, "success_rate": None, "mean_reward": None}
            t = trigger_counts.get(agent_id, {"by_outcome": {}, "last": None})
            by_outcome: dict[str, int] = t["by_outcome"]
            changes = change_counts.get(agent_id, {"promotion": 0, "rollback": 0})
            rows.append(
                {
                    "agent_id": agent_id,
                    "name": agent["name"],
                    "enabled": policy.enabled,
                    "resources_version": resources_version(agent["config"] or {}),
                    **stats,
                    "success_threshold": policy.success_threshold,
                    "min_samples": policy.min_samples,
                    "window": policy.window,
                    "triggers": sum(by_outcome.values()),
                    "running": by_outcome.get("running", 0),
                    "finished": sum(by_outcome.get(o, 0) for o in _FINISHED),
                    "promotions": changes["promotion"],
                    "rollbacks": changes["rollback"],
                    "last_trigger_at": t["last"],
                    "gain_pp": await history.gain_in_force(agent_id) if changes["promotion"] else None,
                }
            )
        totals: dict[str, int] = {}
        for entry in trigger_counts.values():
            for outcome, n in entry["by_outcome"].items():
                totals[outcome] = totals.get(outcome, 0) + n
        triggered = sum(totals.values())
        promotions = sum(c["promotion"] for c in change_counts.values())
        monitor = self.ctx.services.get("auto_rl")
        return {
            "enabled": (await get_config(self.ctx)).auto_rl.enabled,
            "monitor": await monitor.health() if monitor is not None else {"status": "down", "leader": False},
            "triggers": triggered,
            "running": totals.get("running", 0),
            "finished": sum(totals.get(o, 0) for o in _FINISHED),
            "promotions": promotions,
            "rollbacks": sum(c["rollback"] for c in change_counts.values()),
            "success_rate": (totals.get("promoted", 0) / triggered) if triggered else None,
            "agents": rows,
            "recent_triggers": await TriggerService(self.ctx).recent(),
            "recent_promotions": await history.recent(),
        }
