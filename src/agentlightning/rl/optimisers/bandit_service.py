"""The online bandit: a variant per task for agents that run one, learned from stored rewards.

An agent opts in with its config::

    {"bandit": {"enabled": true, "posterior": "beta", "include_incumbent": true},
     "variants": [{"name": "terse", "system_prompt": "..."}, {"name": "cold", "temperature": 0}]}

* **Choosing** (:func:`assign_variant`, called by the task executor before a run): the task's type
  is ``context.task_type`` (``default`` without one); Thompson sampling over the agent's arms of
  that type picks a variant (a variant the task's context already names is kept), the pull is
  counted, and the task runs with the variant's overrides. The choice is written into the task's
  context (``variant``, ``task_type``), which the rollout of the run copies into its metadata.
* **Learning** (:meth:`BanditService.learn`): every rollout-level reward of such a rollout updates
  the arm of its variant and task type, exactly once: the reward is recorded in
  ``bandit_observations`` in the transaction that updates the arm.  The reward listener
  (:func:`on_reward`) learns it just after it is stored; the sweep of ``serve``
  (:class:`BanditListenerService`) finds the ones it missed (a failed write, a process that
  stopped in between) from ``rewards`` itself.
* **Choices made elsewhere** (:func:`on_variant`, a variant listener): an SDK-wrapped agent samples
  its variant locally (``agentlightning.sdk.variants``) from the posteriors of
  ``GET /api/v2/agents/{ref}/bandit`` and records it in its rollout's metadata; the pull is
  counted when that rollout is ingested (once per rollout, whatever the retries), for a declared
  variant of an agent that runs a bandit. Task runs are counted by :func:`assign_variant` instead
  (their rollouts are written by the queue, never ingested).
* **Persistence**: the arms are rows of ``bandit_arms`` (this module is their one writer, and of
  ``bandit_observations``),
  updated with atomic increments, so several workers share one posterior and it survives restarts.

The arithmetic (Beta/Gaussian posteriors, sampling) is :class:`~.bandit.Arm`, shared with the
offline optimiser.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

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
from agentlightning.storage.models.bandit import BanditArm, BanditObservation
from agentlightning.storage.models.rollouts import Reward, Rollout
from agentlightning.storage.types import utcnow
from agentlightning.thompson import DEFAULT_TASK_TYPE, INCUMBENT, SUCCESS_THRESHOLD, Arm, PosteriorKind, choose

if TYPE_CHECKING:
    from agentlightning.agents.queue_sql import ClaimedTask
    from agentlightning.core.context import AppContext
    from agentlightning.settings import Settings

log = logging.getLogger(__name__)

MAX_TASK_TYPE = 64
#: How far back the first sweep of a process looks for rewards not learned yet; later sweeps start
#: from the previous one's start less :data:`SWEEP_OVERLAP` (a reward's ``created_at`` is set
#: before its transaction commits, and hosts' clocks differ).
SWEEP_WINDOW = timedelta(days=1)
SWEEP_OVERLAP = timedelta(minutes=5)
#: Rewards one pass of :meth:`BanditService.learn` handles at most (the next pass takes the rest).
LEARN_BATCH = 500


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

    async def learn(self, rollout_ids: Sequence[str] | None = None, *, since: datetime | None = None) -> int:
        """Take the rollout-level rewards not handled yet into their arms, each exactly once: those
        of ``rollout_ids`` (the listener, just after they were stored), or those stored since
        ``since`` by rollouts that ran a variant (the sweep).  Returns how many reached an arm.

        A reward whose agent runs no bandit, or does not declare the variant, is recorded as
        passed over, so no later pass looks at it again.
        """
        query = (
            select(Reward.id, Reward.value, Rollout.agent_id, Rollout.meta)
            .join(Rollout, Rollout.id == Reward.rollout_id)
            .where(Reward.span_id.is_(None), Rollout.agent_id.is_not(None))
            .where(~exists().where(BanditObservation.reward_id == Reward.id))
            .order_by(Reward.id)
            .limit(LEARN_BATCH)
        )
        if rollout_ids is not None:
            query = query.where(Reward.rollout_id.in_(list(rollout_ids)))
        if since is not None:
            query = query.where(Reward.created_at >= since, Rollout.meta["variant"].as_string().is_not(None))
        bandits: dict[int, AgentBandit | None] = {}
        learned, after = 0, 0
        while True:  # in batches, by reward id
            async with self.ctx.db.session() as session:
                rows = (await session.execute(query.where(Reward.id > after))).all()
            for reward_id, value, agent_id, meta in rows:
                after = reward_id
                if agent_id not in bandits:
                    bandits[agent_id] = await self._bandit_of(agent_id)
                bandit, metadata = bandits[agent_id], meta or {}
                variant = metadata.get("variant")
                declared = bandit is not None and isinstance(variant, str) and variant in bandit.variants
                arm = (task_type_of(metadata), str(variant)) if declared else None
                try:
                    if await self._learn_once(reward_id, agent_id, arm, value):
                        learned += arm is not None
                except IntegrityError:  # the reward was deleted meanwhile (with its rollout)
                    log.debug("bandit: reward %s is gone", reward_id)
            if len(rows) < LEARN_BATCH:
                return learned

    async def _bandit_of(self, agent_id: int) -> AgentBandit | None:
        from agentlightning.agents.service import AgentService
        from agentlightning.errors import NotFound

        try:
            return AgentBandit.of(await AgentService(self.ctx).profile(agent_id))
        except NotFound:
            return None

    async def _learn_once(self, reward_id: int, agent_id: int, arm: tuple[str, str] | None, value: float) -> bool:
        """Record the reward as handled and, when ``arm`` (task type, variant) is given, add it to
        that arm, in one transaction; False when it was handled already."""
        insert = pg_insert if self.ctx.db.dialect == "postgresql" else sqlite_insert
        record = (
            insert(BanditObservation)
            .values(reward_id=reward_id, learned=arm is not None, created_at=utcnow())
            .on_conflict_do_nothing()
            .returning(BanditObservation.reward_id)
        )
        async with self.ctx.db.session() as session:
            # On PostgreSQL a concurrent insert of the same reward waits for this one's commit, then
            # does nothing: the arm is updated by one of them only.
            first = (await session.execute(record)).first() is not None
            if first and arm is not None:
                task_type, variant = arm
                await session.execute(self._increment_statement(agent_id, task_type, variant, _observation(value)))
            await session.commit()
        return first

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
        async with self.ctx.db.session() as session:
            await session.execute(self._increment_statement(agent_id, task_type, variant, delta))
            await session.commit()

    def _increment_statement(self, agent_id: int, task_type: str, variant: str, delta: Mapping[str, float]) -> Any:
        """The upsert of :meth:`_increment`."""
        insert = pg_insert if self.ctx.db.dialect == "postgresql" else sqlite_insert
        columns = ("alpha", "beta", "pulls", "observations", "reward_sum", "reward_sq_sum")
        initial = {"alpha": 1.0, "beta": 1.0, "pulls": 0, "observations": 0, "reward_sum": 0.0, "reward_sq_sum": 0.0}
        values = {c: initial[c] + delta.get(c, 0) for c in columns}
        table = BanditArm.__table__
        statement = insert(BanditArm).values(
            agent_id=agent_id, task_type=task_type, variant=variant, updated_at=utcnow(), **values
        )
        return statement.on_conflict_do_update(
            index_elements=["agent_id", "task_type", "variant"],
            set_={**{c: table.c[c] + delta.get(c, 0) for c in columns if delta.get(c)}, "updated_at": utcnow()},
        )


def _observation(reward: float) -> dict[str, float]:
    """What one reward adds to an arm: a success or a failure, and the reward's moments."""
    r = min(1.0, max(0.0, float(reward)))
    success = r >= SUCCESS_THRESHOLD
    return {
        "alpha": 1.0 if success else 0.0,
        "beta": 0.0 if success else 1.0,
        "observations": 1,
        "reward_sum": r,
        "reward_sq_sum": r * r,
    }


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
    """Learn the stored rollout-level rewards of a rollout that ran a variant (once each)."""
    if event.agent_id is None or event.span_id is not None or not isinstance(event.metadata.get("variant"), str):
        return
    await BanditService(ctx).learn([event.rollout_id])


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
    SDK, gateway; task workers install the same listener for the rewards of their runs), and
    sweeps ``rewards`` every ``BANDIT_SWEEP_INTERVAL_SECONDS`` for any that no listener learned."""

    name = "bandit"

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self._ctx: AppContext | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._swept_from: datetime | None = None
        #: Rewards the sweeps learned (each one a reward its listener missed).
        self.recovered = 0
        self.last_error: str | None = None

    async def start(self, ctx: AppContext) -> None:
        """Register the reward listener and start sweeping."""
        self._ctx = ctx
        install_reward_listener(ctx)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="bandit-sweep")

    async def stop(self) -> None:
        """Unregister it and stop sweeping."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._ctx is not None:
            remove_reward_listener(self._ctx)

    async def sweep(self) -> int:
        """Learn the rewards stored since the last sweep (the last day, at first) that no listener
        learned; returns how many."""
        assert self._ctx is not None
        started = utcnow()
        since = self._swept_from - SWEEP_OVERLAP if self._swept_from else started - SWEEP_WINDOW
        learned = await BanditService(self._ctx).learn(since=since)
        self._swept_from = started
        if learned:
            log.info("bandit: %d reward(s) no listener had learned were taken in", learned)
        self.recovered += learned
        return learned

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - the database may be restarting: next round
                self.last_error = f"sweep: {exc}"
                log.warning("bandit sweep failed: %s", exc)

    async def health(self) -> dict[str, Any]:
        """Listening, the rewards the sweeps recovered, and the last sweep's error (a failed sweep
        is tried again at the next interval and loses nothing, so it does not degrade the status)."""
        listening = self._ctx is not None and id(self._ctx) in _LISTENERS
        return {
            "status": "ok",
            "listening": listening,
            "recovered_rewards": self.recovered,
            "last_error": self.last_error,
        }


def create_bandit_listener(settings: Settings) -> BanditListenerService:
    """``SERVICE_FACTORIES`` entry."""
    return BanditListenerService(settings.bandit_sweep_interval_seconds)
