"""The Auto-RL monitor: a background service that starts optimisations by itself.

Every ``AUTO_RL_POLL_SECONDS`` the replica holding the ``monitor`` lease (a row of
``auto_rl_leases``, renewed each round, taken over once expired) looks at every active agent and
triggers an optimisation when its policy says so:

* Auto-RL is enabled (system-wide and for the agent);
* the agent's last ``window`` finished rollouts number at least ``min_samples``
  (``RolloutService.window_stats``);
* their success rate is below ``success_threshold``;
* the agent was not triggered within ``cooldown_minutes``;
* no optimisation of the agent is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from agentlightning.agents.service import AgentService
from agentlightning.core.system_config import get_config
from agentlightning.rl.auto.history import HistoryService
from agentlightning.rl.auto.policy import PolicyService
from agentlightning.rl.auto.triggers import TriggerService
from agentlightning.storage.db import affected_rows
from agentlightning.storage.models import AutoRLLease
from agentlightning.storage.types import as_utc, utcnow

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext
    from agentlightning.settings import Settings

__all__ = ["AutoRLMonitor", "create_monitor", "window_stats"]

log = logging.getLogger(__name__)
LEASE_NAME = "monitor"


def create_monitor(settings: Settings) -> AutoRLMonitor | None:
    """Factory listed in ``SERVICE_FACTORIES`` (None when ``AUTO_RL_MONITOR_ENABLED`` is false)."""
    return AutoRLMonitor(settings) if settings.auto_rl_monitor_enabled else None


async def window_stats(ctx: AppContext, agent_id: int, window: int) -> dict[str, Any]:
    """``{n, success_rate, mean_reward}`` of the agent's last ``window`` finished rollouts."""
    from agentlightning.rollouts.service import RolloutService

    stats = await RolloutService(ctx).window_stats(agent_id, window)
    return {"n": int(stats["n"]), "success_rate": stats["success_rate"], "mean_reward": stats["mean_reward"]}


class AutoRLMonitor:
    """Watches agents' rolling success and triggers optimisations (a ``BackgroundService``)."""

    name = "auto_rl"

    def __init__(self, settings: Settings, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.instance_id = instance_id or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._ctx: AppContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.leader = False
        self.rounds = 0
        self.triggered = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def ctx(self) -> AppContext:
        """The context given to :meth:`start`."""
        assert self._ctx is not None, "monitor not started"
        return self._ctx

    async def start(self, ctx: AppContext) -> None:
        """Restore the gain gauges from history and start watching."""
        self._ctx = ctx
        try:
            await HistoryService(ctx).restore_gauges()
        except Exception:  # noqa: BLE001 - metrics must not keep the server from starting
            log.exception("restoring rl_performance_gain_percent failed")
        self._task = asyncio.create_task(self._loop(), name="auto-rl-monitor")

    async def stop(self) -> None:
        """Stop watching and hand the lease back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ctx is not None and self.leader:
            with contextlib.suppress(Exception):
                async with self.ctx.db.session() as s:
                    await s.execute(
                        delete(AutoRLLease).where(AutoRLLease.name == LEASE_NAME, AutoRLLease.owner == self.instance_id)
                    )
                    await s.commit()
        self.leader = False

    async def health(self) -> dict[str, Any]:
        """Whether this replica leads, and what it has done."""
        return {
            "status": "up" if self._task is not None and not self._task.done() else "down",
            "instance": self.instance_id,
            "leader": self.leader,
            "rounds": self.rounds,
            "triggered": self.triggered,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    def wake(self) -> None:
        """Look now rather than at the next poll (tests, and after a policy change)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must survive a database hiccup
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("Auto-RL monitor round failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.auto_rl_poll_seconds)
            self._wake.clear()

    async def acquire(self) -> bool:
        """Take or renew the monitor lease; True when this replica holds it."""
        now = utcnow()
        expires = now + timedelta(seconds=self.settings.auto_rl_lease_seconds)
        async with self.ctx.db.session() as s:
            result = await s.execute(
                update(AutoRLLease)
                .where(
                    AutoRLLease.name == LEASE_NAME,
                    (AutoRLLease.owner == self.instance_id) | (AutoRLLease.expires_at < now),
                )
                .values(owner=self.instance_id, expires_at=expires)
            )
            if affected_rows(result) == 1:
                await s.commit()
                self.leader = True
                return True
            existing = await s.get(AutoRLLease, LEASE_NAME)
            if existing is not None:
                await s.rollback()
                self.leader = False
                return False
            s.add(AutoRLLease(name=LEASE_NAME, owner=self.instance_id, expires_at=expires))
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                self.leader = False
                return False
        self.leader = True
        return True

    async def tick(self) -> list[dict[str, Any]]:
        """One round: lead or step aside, then trigger what the policies call for."""
        self.rounds += 1
        if not await self.acquire():
            return []
        return await self.check()

    async def check(self) -> list[dict[str, Any]]:
        """Trigger every active agent whose policy calls for an optimisation; the triggers made."""
        if not (await get_config(self.ctx)).auto_rl.enabled:
            return []
        agents = AgentService(self.ctx)
        ids: list[int] = []
        page = 1
        while True:
            items, total = await agents.list(status="active", page=page, page_size=200)
            ids += [a["id"] for a in items]
            if page * 200 >= total or not items:
                break
            page += 1
        if not ids:
            return []
        policies = await PolicyService(self.ctx).many(ids)
        triggers = TriggerService(self.ctx)
        made: list[dict[str, Any]] = []
        now = utcnow()
        for agent_id in ids:
            policy = policies[agent_id]
            if not policy.enabled:
                continue
            stats = await window_stats(self.ctx, agent_id, policy.window)
            rate = stats["success_rate"]
            if stats["n"] < policy.min_samples or rate is None or rate >= policy.success_threshold:
                continue
            last = await triggers.last_trigger_at(agent_id)
            if last is not None and now - as_utc(last) < timedelta(minutes=policy.cooldown_minutes):
                continue
            if await triggers.in_flight(agent_id):
                continue
            try:
                made.append(await triggers.trigger(agent_id, reason="monitor", actor=None, stats=stats))
            except Exception as exc:  # noqa: BLE001 - one agent must not stop the round
                self.errors += 1
                self.last_error = f"agent {agent_id}: {exc}"
                log.warning("Auto-RL could not trigger agent %s: %s", agent_id, exc)
                continue
            self.triggered += 1
            log.info("Auto-RL triggered agent %s (success %.3f over %d rollouts)", agent_id, rate, stats["n"])
        return made
