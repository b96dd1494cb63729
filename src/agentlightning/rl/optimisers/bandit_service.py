"""The online bandit: a variant per task for agents that run one, learned from stored rewards.

An agent opts in with its config::

    {"bandit": {"enabled": true, "posterior": "beta", "include_incumbent": true},
     "variants": [{"name": "terse", "system_prompt": "..."}, {"name": "cold", "temperature": 0}]}

* **Choosing** (:func:`assign_variant`, called by the task executor before a run): the task's type
  is ``context.task_type`` (``default`` without one); Thompson sampling over the agent's arms of
  that type picks a variant (a variant the task's context already names is kept), the pull is
  counted, and the task runs with the variant's overrides. The choice is written into the task's
  context (``variant``, ``task_type``), which the rollout of the run copies into its metadata.
* **Learning** (:func:`on_reward`, a reward listener of ``agentlightning.rollouts``): every
  rollout-level reward of such a rollout updates the arm of its variant and task type.
* **Choices made elsewhere** (:func:`on_variant`, a variant listener): an SDK-wrapped agent samples
  its variant locally (``agentlightning.sdk.variants``) from the posteriors of
  ``GET /api/v2/agents/{ref}/bandit`` and records it in its rollout's metadata; the pull is
  counted when that rollout is ingested (once per rollout, whatever the retries), for a declared
  variant of an agent that runs a bandit. Task runs are counted by :func:`assign_variant` instead
  (their rollouts are written by the queue, never ingested).
* **Persistence**: the arms are rows of ``bandit_arms`` (this module is their one writer),
  updated with atomic increments, so several workers share one posterior and it survives restarts.

The arithmetic (Beta/Gaussian posteriors, sampling) is :class:`~.bandit.Arm`, shared with the
offline optimiser.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from agentlightning.agents.profile import AgentProfile
from agentlightning.rl.optimisers.bandit import BanditPolicy, Variant, parse_variants
from agentlightning.rollouts.listeners import (
    RewardEvent,
    RewardListener,
    VariantEvent,
    VariantListener,
    register_reward_listener,
    register_variant_listener,
    unregister_reward_listener,
    unregister_variant_listener,
)
from agentlightning.storage.models.bandit import BanditArm
from agentlightning.storage.types import utcnow
from agentlightning.thompson import DEFAULT_TASK_TYPE, INCUMBENT, SUCCESS_THRESHOLD, Arm, PosteriorKind, choose

if TYPE_CHECKING:
    from agentlightning.agents.queue_sql import ClaimedTask
    from agentlightning.core.context import AppContext
    from agentlightning.settings import Settings

log = logging.getLogger(__name__)

MAX_TASK_TYPE = 64


@dataclasses.dataclass(frozen=True)
class AgentBandit:
    """An agent's bandit: its policy and its declared variants (by name, ``incumbent`` included)."""

    policy: BanditPolicy
    variants: dict[str, Variant]

    @classmethod
    def of(cls, agent: AgentProfile) -> AgentBandit | None:
        """The agent's bandit, or None when it runs none (disabled, no variants, or invalid ones)."""
        raw = agent.config.get("bandit")
        if not isinstance(raw, Mapping) or not raw.get("enabled"):
            return None
        try:
            policy = BanditPolicy.model_validate(dict(raw))
            variants = {v.name: v for v in parse_variants(agent.config.get("variants") or [])}
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            log.warning("agent %s: bandit disabled, invalid configuration: %s", agent.id, exc)
            return None
        if policy.include_incumbent and INCUMBENT not in variants:
            variants[INCUMBENT] = Variant(name=INCUMBENT)
        return cls(policy, variants) if variants else None


def task_type_of(context: Mapping[str, Any]) -> str:
    """The task type a task's context declares (``default`` without one)."""
    value = context.get("task_type")
    return str(value)[:MAX_TASK_TYPE] if isinstance(value, str) and value.strip() else DEFAULT_TASK_TYPE


def apply_variant(agent: AgentProfile, variant: Variant) -> AgentProfile:
    """The agent's profile with the variant's overrides (prompt, model, temperature, tools)."""
    overrides = variant.overrides()
    if not overrides:
        return agent
    return dataclasses.replace(agent, config={**agent.config, **overrides})


class BanditService:
    """Reads and updates the persisted arms (the one writer of ``bandit_arms``)."""

    def __init__(self, ctx: AppContext, rng: random.Random | None = None) -> None:
        self.ctx = ctx
        self.rng = rng or random.Random()

    async def arms(self, agent_id: int, task_type: str | None = None) -> dict[str, dict[str, Arm]]:
        """``{task_type: {variant: Arm}}`` of an agent (one task type when given)."""
        query = select(BanditArm).where(BanditArm.agent_id == agent_id)
        if task_type is not None:
            query = query.where(BanditArm.task_type == task_type)
        out: dict[str, dict[str, Arm]] = {}
        async with self.ctx.db.session() as session:
            for row in await session.scalars(query):
                out.setdefault(row.task_type, {})[row.variant] = Arm(
                    alpha=row.alpha,
                    beta=row.beta,
                    pulls=row.pulls,
                    observations=row.observations,
                    reward_sum=row.reward_sum,
                    reward_sq_sum=row.reward_sq_sum,
                )
        return out

    async def choose(self, agent_id: int, bandit: AgentBandit, task_type: str) -> str:
        """Thompson-sample a variant for one task of ``task_type`` and count the pull."""
        arms = (await self.arms(agent_id, task_type)).get(task_type, {})
        name = choose(arms, sorted(bandit.variants), bandit.policy.posterior, self.rng)
        await self._increment(agent_id, task_type, name, pulls=1)
        return name

    async def record_pull(self, agent_id: int, task_type: str, variant: str) -> None:
        """Count a pull of a variant the caller chose itself."""
        await self._increment(agent_id, task_type, variant, pulls=1)

    async def observe(self, agent_id: int, task_type: str, variant: str, reward: float) -> None:
        """Take one reward of a run with ``variant`` into the arm's posterior."""
        r = min(1.0, max(0.0, float(reward)))
        success = r >= SUCCESS_THRESHOLD
        await self._increment(
            agent_id,
            task_type,
            variant,
            alpha=1.0 if success else 0.0,
            beta=0.0 if success else 1.0,
            observations=1,
            reward_sum=r,
            reward_sq_sum=r * r,
        )

    async def summary(self, agent_id: int, kind: PosteriorKind = "beta") -> list[dict[str, Any]]:
        """Every arm of an agent with its posterior (for the API, the CLI and tests)."""
        arms = await self.arms(agent_id)
        return [
            {"task_type": task_type, "variant": name, **arm.as_dict(kind)}
            for task_type, by_name in sorted(arms.items())
            for name, arm in sorted(by_name.items())
        ]

    async def state(self, agent_ref: int | str) -> dict[str, Any]:
        """An agent's bandit settings, declared variants and posteriors (``AGENT_NOT_FOUND`` if none)."""
        from agentlightning.agents.service import AgentService

        agent = await AgentService(self.ctx).profile(agent_ref)
        bandit = AgentBandit.of(agent)
        kind: PosteriorKind = bandit.policy.posterior if bandit else "beta"
        return {
            "agent_id": agent.id,
            "enabled": bandit is not None,
            "posterior": kind,
            "variants": sorted(bandit.variants) if bandit else [],
            "definitions": [bandit.variants[name].model_dump() for name in sorted(bandit.variants)] if bandit else [],
            "arms": await self.summary(agent.id, kind),
        }

    async def _increment(self, agent_id: int, task_type: str, variant: str, **delta: float) -> None:
        """Create the arm with the prior if missing, then add ``delta`` atomically (both dialects)."""
        insert = pg_insert if self.ctx.db.dialect == "postgresql" else sqlite_insert
        columns = ("alpha", "beta", "pulls", "observations", "reward_sum", "reward_sq_sum")
        initial = {"alpha": 1.0, "beta": 1.0, "pulls": 0, "observations": 0, "reward_sum": 0.0, "reward_sq_sum": 0.0}
        values = {c: initial[c] + delta.get(c, 0) for c in columns}
        table = BanditArm.__table__
        statement = insert(BanditArm).values(
            agent_id=agent_id, task_type=task_type, variant=variant, updated_at=utcnow(), **values
        )
        statement = statement.on_conflict_do_update(
            index_elements=["agent_id", "task_type", "variant"],
            set_={**{c: table.c[c] + delta.get(c, 0) for c in columns if delta.get(c)}, "updated_at": utcnow()},
        )
        async with self.ctx.db.session() as session:
            await session.execute(statement)
            await session.commit()


async def assign_variant(ctx: AppContext, task: ClaimedTask, service: BanditService | None = None) -> ClaimedTask:
    """The task to run: unchanged, or, for an agent running a bandit, with a chosen variant applied
    and recorded in its context. Never fails the task: on an error it runs unchanged."""
    bandit = AgentBandit.of(task.agent)
    if bandit is None:
        return task
    try:
        service = service or BanditService(ctx)
        task_type = task_type_of(task.context)
        forced = task.context.get("variant")
        if isinstance(forced, str) and forced in bandit.variants:
            name = forced
            await service.record_pull(task.agent.id, task_type, name)
        else:
            name = await service.choose(task.agent.id, bandit, task_type)
    except Exception:  # noqa: BLE001 - the bandit must never fail a task
        log.exception("task %s: bandit could not choose a variant; running the agent as configured", task.id)
        return task
    context = {**task.context, "variant": name, "task_type": task_type}
    return dataclasses.replace(task, context=context, agent=apply_variant(task.agent, bandit.variants[name]))


async def on_reward(ctx: AppContext, event: RewardEvent) -> None:
    """Update the arm of a rollout's variant with its (rollout-level) reward."""
    variant = event.metadata.get("variant")
    if event.agent_id is None or event.span_id is not None or not isinstance(variant, str):
        return
    from agentlightning.agents.service import AgentService
    from agentlightning.errors import NotFound

    try:
        agent = await AgentService(ctx).profile(event.agent_id)
    except NotFound:
        return
    bandit = AgentBandit.of(agent)
    if bandit is None or variant not in bandit.variants:
        return
    await BanditService(ctx).observe(agent.id, task_type_of(event.metadata), variant, event.value)


async def on_variant(ctx: AppContext, event: VariantEvent) -> None:
    """Count the pull of a variant an SDK-wrapped agent chose (its rollout was just ingested)."""
    variant = event.metadata.get("variant")
    if event.source == "task" or not isinstance(variant, str):
        return
    from agentlightning.agents.service import AgentService
    from agentlightning.errors import NotFound

    try:
        agent = await AgentService(ctx).profile(event.agent_id)
    except NotFound:
        return
    bandit = AgentBandit.of(agent)
    if bandit is None or variant not in bandit.variants:  # an undeclared name makes no arm
        return
    await BanditService(ctx).record_pull(agent.id, task_type_of(event.metadata), variant)


#: id(context) -> (weak reference to it, its reward listener, its variant listener).
_LISTENERS: dict[int, tuple[weakref.ref[AppContext], RewardListener, VariantListener]] = {}


def _unregister(entry: tuple[weakref.ref[AppContext], RewardListener, VariantListener]) -> None:
    unregister_reward_listener(entry[1])
    unregister_variant_listener(entry[2])


def install_reward_listener(ctx: AppContext) -> None:
    """Learn from the rewards this process stores, and count the pulls of the variants SDK agents
    chose, from the rollouts it ingests (once per context).

    The listeners hold the context weakly and remove themselves once the context is gone, so a
    process that builds many contexts (tests, CLI commands) does not keep stale listeners.
    """
    entry = _LISTENERS.get(id(ctx))
    if entry is not None and entry[0]() is ctx:
        return
    if entry is not None:  # a dead context whose id was reused
        _unregister(entry)
    ref = weakref.ref(ctx)
    key = id(ctx)

    def live_context() -> AppContext | None:
        live = ref()
        if live is None:
            gone = _LISTENERS.get(key)
            if gone is not None and gone[0]() is None:
                del _LISTENERS[key]
                _unregister(gone)
        return live

    async def reward_listener(event: RewardEvent) -> None:
        live = live_context()
        if live is not None:
            await on_reward(live, event)

    async def variant_listener(event: VariantEvent) -> None:
        live = live_context()
        if live is not None:
            await on_variant(live, event)

    _LISTENERS[key] = (
        ref,
        register_reward_listener(reward_listener, scope=ctx),
        register_variant_listener(variant_listener, scope=ctx),
    )


def remove_reward_listener(ctx: AppContext) -> None:
    """Stop learning for this context (its process is shutting down)."""
    entry = _LISTENERS.pop(id(ctx), None)
    if entry is not None:
        _unregister(entry)


class BanditListenerService:
    """Background service of ``serve``: learns from the rewards the API process stores (feedback,
    SDK, gateway); task workers install the same listener for the rewards of their runs."""

    name = "bandit"

    def __init__(self) -> None:
        self._ctx: AppContext | None = None

    async def start(self, ctx: AppContext) -> None:
        """Register the reward listener."""
        self._ctx = ctx
        install_reward_listener(ctx)

    async def stop(self) -> None:
        """Unregister it."""
        if self._ctx is not None:
            remove_reward_listener(self._ctx)

    async def health(self) -> dict[str, Any]:
        """Always ok: it only listens."""
        return {"status": "ok", "listening": self._ctx is not None and id(self._ctx) in _LISTENERS}


def create_bandit_listener(settings: Settings) -> BanditListenerService:
    """``SERVICE_FACTORIES`` entry."""
    return BanditListenerService()
