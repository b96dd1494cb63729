"""The one writer of ``rollouts`` and ``rewards`` (and of the spans clients send).

Every run of an agent is a rollout: the platform's task runs (written with the task's outcome, see
:mod:`agentlightning.rollouts.capture`), agents instrumented with the SDK and gateway
conversations (:meth:`RolloutService.ingest`), workflow runs.  Rewards come from verifiers, user
feedback, SDK/gateway clients and the platform; every stored reward is passed to the reward
listeners after its commit (:func:`register_reward_listener`), and every ingested rollout that comes
to carry an agent and a ``variant`` to the variant listeners (the bandit counts that pull).

Visibility is the tasks': a user sees and rewards only their own rollouts; a role with
``agent:write`` (developer, admin) sees all.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Union

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from agentlightning.errors import Conflict, NotFound, ValidationFailed
from agentlightning.rollouts.listeners import (
    RewardEvent,
    RewardListener,
    VariantEvent,
    notify_reward_listeners,
    notify_variant_listeners,
    register_reward_listener,
    unregister_reward_listener,
)
from agentlightning.rollouts.schemas import (
    FeedbackIn,
    RolloutBatchIn,
    RolloutFilters,
    SpanIn,
    task_rollout_id,
)
from agentlightning.storage.models import Reward, Rollout, TraceSpan
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.vocabulary import ROLLOUT_TERMINAL, RewardSource, RolloutSource, RolloutStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from agentlightning.auth.service import Principal
    from agentlightning.core.context import AppContext

__all__ = [
    "Actor",
    "RewardEvent",
    "RewardListener",
    "RolloutService",
    "register_reward_listener",
    "rollout_to_dict",
    "unregister_reward_listener",
]

#: Who acts: an authenticated principal (visibility applies), a username acting for the platform,
#: or ``None`` (the platform itself).
Actor = Union["Principal", str, None]
#: Reward source of the rewards sent with an ingested rollout, by the rollout's source (a client never
#: gives a `system` reward: that is the platform's own).
_INGEST_REWARD_SOURCE: dict[str, RewardSource] = {"sdk": "sdk", "gateway": "gateway", "workflow": "sdk"}


def _username(actor: Actor) -> str | None:
    if actor is None or isinstance(actor, str):
        return actor
    return actor.username


def _owner_filter(actor: Actor) -> str | None:
    """The only owner whose rollouts ``actor`` may see (None: all)."""
    if actor is None or isinstance(actor, str):
        return None
    return None if actor.can("agent:write") else actor.username


def rollout_to_dict(row: Rollout) -> dict[str, Any]:
    """The API representation of a rollout."""
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "task_id": row.task_id,
        "parent_id": row.parent_id,
        "source": row.source,
        "status": row.status,
        "owner": row.owner,
        "input": row.input,
        "output": row.output,
        "reward": row.reward,
        "metadata": row.meta or {},
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
        "ended_at": as_utc(row.ended_at),
    }


def reward_to_dict(row: Reward) -> dict[str, Any]:
    """The API representation of a reward."""
    return {
        "id": row.id,
        "rollout_id": row.rollout_id,
        "span_id": row.span_id,
        "value": row.value,
        "source": row.source,
        "name": row.name,
        "comment": row.comment,
        "details": row.details or {},
        "created_by": row.created_by,
        "created_at": as_utc(row.created_at),
    }


def span_to_dict(row: TraceSpan) -> dict[str, Any]:
    """The API representation of a span of a rollout."""
    return {
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "parent_span_id": row.parent_span_id,
        "rollout_id": row.rollout_id,
        "kind": row.kind,
        "name": row.name,
        "status": row.status,
        "input": row.input,
        "output": row.output,
        "error": row.error,
        "model": row.model,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "latency_ms": row.latency_ms,
        "attributes": row.attributes or {},
        "started_at": as_utc(row.started_at),
        "ended_at": as_utc(row.ended_at),
    }


def _not_found(rollout_id: str) -> NotFound:
    return NotFound("ROLLOUT_NOT_FOUND", f"Rollout '{rollout_id}' not found", details={"rollout_id": rollout_id})


def _append(row: Rollout, item: Any, agent_id: int | None, now: Any) -> None:
    """Apply an ingested rollout's fields to its existing row (what was sent, nothing else)."""
    if item.status is not None and item.status != row.status:
        row.status = item.status
        row.ended_at = now if item.status in ROLLOUT_TERMINAL else None
    if item.input is not None:
        row.input = item.input
    if item.output is not None:
        row.output = item.output
    if item.metadata:
        row.meta = {**(row.meta or {}), **item.metadata}
    if item.parent_id is not None:
        row.parent_id = item.parent_id
    if row.agent_id is None and agent_id is not None:
        row.agent_id = agent_id
    row.updated_at = now


def _has_variant(agent_id: int | None, meta: dict[str, Any] | None) -> bool:
    """Whether a rollout names an agent and a variant of it (what counts as a bandit pull)."""
    return agent_id is not None and isinstance((meta or {}).get("variant"), str)


def _event(row: Rollout, value: float, source: str, span_id: str | None) -> RewardEvent:
    return RewardEvent(
        rollout_id=row.id,
        agent_id=row.agent_id,
        task_id=row.task_id,
        value=value,
        source=source,
        span_id=span_id,
        metadata=dict(row.meta or {}),
    )


class RolloutService:
    """Rollouts, their spans and rewards: create, append, reward, finish, list, read, stats."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # --- writing ---------------------------------------------------------------------------
    def _insert(self) -> Any:
        return pg_insert if self.ctx.db.dialect == "postgresql" else sqlite_insert

    async def start(
        self,
        *,
        source: RolloutSource,
        owner: str | None,
        agent_id: int | None = None,
        task_id: int | None = None,
        parent_id: str | None = None,
        rollout_id: str | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Open a ``running`` rollout and return its id (``ROLLOUT_EXISTS`` when the id is taken)."""
        now = utcnow()
        rid = rollout_id or (task_rollout_id(task_id) if task_id is not None else uuid.uuid4().hex)
        stmt = (
            self._insert()(Rollout)
            .values(
                id=rid,
                agent_id=agent_id,
                task_id=task_id,
                parent_id=parent_id,
                source=source,
                status="running",
                owner=owner,
                input=input,
                meta=metadata or {},
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(Rollout.id)
        )
        async with self.ctx.db.session() as s:
            created = (await s.execute(stmt)).first()
            await s.commit()
        if created is None:
            raise Conflict("ROLLOUT_EXISTS", f"Rollout '{rid}' already exists", details={"rollout_id": rid})
        return rid

    async def _visible(self, s: AsyncSession, actor: Actor, rollout_id: str) -> Rollout:
        row = await s.get(Rollout, rollout_id)
        owner = _owner_filter(actor)
        if row is None or (owner is not None and row.owner != owner):
            raise _not_found(rollout_id)
        return row

    async def _insert_spans_of(self, s: AsyncSession, groups: Sequence[tuple[Rollout, Sequence[SpanIn]]]) -> int:
        """Insert the spans of several rollouts in one statement; returns how many were new."""
        now = utcnow()
        values = []
        for row, spans in groups:
            for span in spans:
                started = span.started_at or now
                ended = span.ended_at or (
                    started + timedelta(milliseconds=span.latency_ms) if span.latency_ms is not None else None
                )
                values.append(
                    {
                        "trace_id": span.trace_id or row.id,
                        "span_id": span.span_id,
                        "parent_span_id": span.parent_span_id,
                        "rollout_id": row.id,
                        "task_id": row.task_id,
                        "agent_id": row.agent_id,
                        "kind": span.kind,
                        "name": span.name,
                        "status": span.status,
                        "input": span.input,
                        "output": span.output,
                        "error": span.error,
                        "model": span.model,
                        "prompt_tokens": span.prompt_tokens,
                        "completion_tokens": span.completion_tokens,
                        "latency_ms": span.latency_ms,
                        "attributes": span.attributes,
                        "started_at": started,
                        "ended_at": ended,
                    }
                )
        if not values:
            return 0
        # executemany with RETURNING: one compiled statement, batched by SQLAlchemy's insertmanyvalues.
        stmt = (
            self._insert()(TraceSpan)
            .on_conflict_do_nothing(index_elements=["span_id"])
            .returning(TraceSpan.span_id, sort_by_parameter_order=True)
        )
        return len((await s.execute(stmt, values)).all())

    async def add_spans(self, rollout_id: str, spans: Sequence[SpanIn], *, owner: Actor = None) -> int:
        """Append spans to a rollout; a span whose ``span_id`` is already stored is skipped.
        Returns how many were stored.  ``owner`` (an actor) must be allowed to see the rollout."""
        async with self.ctx.db.session() as s:
            row = await self._visible(s, owner, rollout_id)
            added = await self._insert_spans_of(s, [(row, spans)])
            row.updated_at = utcnow()
            await s.commit()
        return added

    async def _store_reward(
        self,
        s: AsyncSession,
        row: Rollout,
        value: float,
        *,
        source: RewardSource,
        created_by: str | None,
        span_id: str | None = None,
        name: str | None = None,
        comment: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Reward:
        if span_id is not None:
            found = await s.scalar(
                select(TraceSpan.id).where(TraceSpan.span_id == span_id, TraceSpan.rollout_id == row.id)
            )
            if found is None:
                raise NotFound(
                    "SPAN_NOT_FOUND",
                    f"Rollout '{row.id}' has no span '{span_id}'",
                    details={"rollout_id": row.id, "span_id": span_id},
                )
        now = utcnow()
        reward = Reward(
            rollout_id=row.id,
            span_id=span_id,
            value=float(value),
            source=source,
            name=name,
            comment=comment,
            details=details or {},
            created_by=created_by,
            created_at=now,
        )
        s.add(reward)
        if span_id is None:
            row.reward = float(value)
        row.updated_at = now
        await s.flush()
        return reward

    async def add_reward(
        self,
        rollout_id: str,
        value: float,
        *,
        source: RewardSource,
        actor: Actor,
        span_id: str | None = None,
        name: str | None = None,
        comment: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a reward of the rollout (or of one of its spans) and tell the listeners.

        A rollout-level reward becomes the rollout's ``reward``.  ``actor`` must be allowed to see
        the rollout (else ``ROLLOUT_NOT_FOUND``); ``span_id`` must be one of its spans.
        """
        async with self.ctx.db.session() as s:
            row = await self._visible(s, actor, rollout_id)
            reward = await self._store_reward(
                s,
                row,
                value,
                source=source,
                created_by=_username(actor),
                span_id=span_id,
                name=name,
                comment=comment,
                details=details,
            )
            data = reward_to_dict(reward)
            event = _event(row, reward.value, source, span_id)
            await s.commit()
        await notify_reward_listeners([event], scope=self.ctx)
        return data

    async def finish(self, rollout_id: str, *, status: RolloutStatus = "completed", output: Any = None) -> None:
        """End a rollout with ``status`` (and its output, when given)."""
        async with self.ctx.db.session() as s:
            found = await self.finish_in(s, rollout_id, status=status, output=output)
            await s.commit()
        if not found:
            raise _not_found(rollout_id)

    async def finish_in(
        self, s: AsyncSession, rollout_id: str, *, status: RolloutStatus = "completed", output: Any = None
    ) -> bool:
        """End a rollout inside the caller's transaction ``s`` (so a workflow run and its rollout
        end together); False when there is no such rollout."""
        if status not in ROLLOUT_TERMINAL:
            raise ValidationFailed("VALIDATION_ERROR", f"A rollout finishes as completed or failed, not {status!r}")
        now = utcnow()
        values: dict[str, Any] = {"status": status, "ended_at": now, "updated_at": now}
        if output is not None:
            values["output"] = output
        res = await s.execute(update(Rollout).where(Rollout.id == rollout_id).values(**values).returning(Rollout.id))
        return res.first() is not None

    async def ingest(self, batch: RolloutBatchIn, *, actor: Actor) -> dict[str, Any]:
        """Create or append to each rollout of ``batch`` with its spans and rewards, in one transaction.

        A new id (or none) creates a rollout owned by ``actor``; a known id appends to it when
        ``actor`` owns it (``ROLLOUT_ID_TAKEN`` otherwise); an id repeated in the batch appends to
        the rollout its first entry made (a long rollout sent in parts of 200 spans).  Spans
        already stored are skipped, so a retried batch changes nothing twice.  The whole batch costs a fixed number of
        statements (lookup, rollouts, spans, span check, rewards), whatever its size.
        """
        from agentlightning.agents.service import AgentService

        agents = AgentService(self.ctx)
        resolved: dict[int | str, int] = {}
        agent_ids: list[int | None] = []
        for item in batch.rollouts:  # resolve names first: an unknown agent fails the whole batch
            ref = item.agent_id if item.agent_id is not None else item.agent_name
            if ref is not None and ref not in resolved:
                resolved[ref] = (await agents.get(ref)).id
            agent_ids.append(resolved[ref] if ref is not None else None)
        owner = _username(actor)
        restricted = _owner_filter(actor) is not None
        ids = [item.id or uuid.uuid4().hex for item in batch.rollouts]
        now = utcnow()
        async with self.ctx.db.session() as s:
            existing = {r.id: r for r in (await s.execute(select(Rollout).where(Rollout.id.in_(ids)))).scalars()}
            stored_before = len(existing)
            rows: list[Rollout] = []
            pulls: list[VariantEvent] = []  # rollouts that came to carry an agent and a variant
            for rid, item, agent_id in zip(ids, batch.rollouts, agent_ids):
                row = existing.get(rid)
                if row is None:  # new (a later entry with the same id appends to it)
                    status = item.status or "completed"
                    row = Rollout(
                        id=rid,
                        agent_id=agent_id,
                        parent_id=item.parent_id,
                        source=item.source,
                        status=status,
                        owner=owner,
                        input=item.input,
                        output=item.output,
                        meta=item.metadata,
                        created_at=now,
                        updated_at=now,
                        ended_at=now if status in ROLLOUT_TERMINAL else None,
                    )
                    s.add(row)
                    existing[rid] = row
                    had_variant = False
                else:
                    if (restricted and row.owner != owner) or row.source == "task":
                        raise Conflict(
                            "ROLLOUT_ID_TAKEN", f"Rollout id '{rid}' is already used", details={"rollout_id": rid}
                        )
                    had_variant = _has_variant(row.agent_id, row.meta)
                    _append(row, item, agent_id, now)
                if not had_variant and _has_variant(row.agent_id, row.meta) and row.agent_id is not None:
                    pulls.append(VariantEvent(row.id, row.agent_id, row.source, dict(row.meta or {})))
                rows.append(row)
            await s.flush()  # the new rollouts, before their spans and rewards
            spans_added = await self._insert_spans_of(s, [(row, item.spans) for row, item in zip(rows, batch.rollouts)])
            wanted = {(row.id, r.span_id) for row, item in zip(rows, batch.rollouts) for r in item.rewards if r.span_id}
            known: set[tuple[str, str]] = set()
            if wanted:
                found = await s.execute(
                    select(TraceSpan.rollout_id, TraceSpan.span_id).where(
                        TraceSpan.rollout_id.in_({rid for rid, _ in wanted}),
                        TraceSpan.span_id.in_({sid for _, sid in wanted}),
                    )
                )
                known = {(str(r.rollout_id), str(r.span_id)) for r in found}
            events: list[RewardEvent] = []
            rewards: list[Reward] = []
            for row, item in zip(rows, batch.rollouts):
                source = _INGEST_REWARD_SOURCE[item.source]
                for reward in item.rewards:
                    if reward.span_id is not None and (row.id, reward.span_id) not in known:
                        raise NotFound(
                            "SPAN_NOT_FOUND",
                            f"Rollout '{row.id}' has no span '{reward.span_id}'",
                            details={"rollout_id": row.id, "span_id": reward.span_id},
                        )
                    rewards.append(
                        Reward(
                            rollout_id=row.id,
                            span_id=reward.span_id,
                            value=reward.value,
                            source=source,
                            name=reward.name,
                            comment=reward.comment,
                            details=reward.details,
                            created_by=owner,
                            created_at=now,
                        )
                    )
                    if reward.span_id is None:
                        row.reward = reward.value
                    events.append(_event(row, reward.value, source, reward.span_id))
            s.add_all(rewards)
            await s.commit()
        await notify_variant_listeners(pulls, scope=self.ctx)  # before the rewards: a pull precedes its reward
        await notify_reward_listeners(events, scope=self.ctx)
        created = len(existing) - stored_before
        return {"ids": ids, "created": created, "spans_added": spans_added, "rewards_added": len(rewards)}

    async def feedback(self, actor: Actor, task_id: int, body: FeedbackIn) -> dict[str, Any]:
        """A user's score of a finished task, stored as a ``feedback`` reward of its rollout.

        Only a user who may read the task gives feedback on it (``TASK_NOT_FOUND`` otherwise); an
        unfinished task is ``TASK_NOT_FINISHED``.  A finished task without a rollout (cancelled,
        or run before rollouts existed) gets one now.
        """
        from agentlightning.agents.scheduler import TaskScheduler

        task = await TaskScheduler(self.ctx).get(task_id)
        owner = _owner_filter(actor)
        if owner is not None and task.get("created_by") != owner:
            raise NotFound("TASK_NOT_FOUND", f"Task '{task_id}' not found", details={"task_id": task_id})
        if task["status"] not in ("completed", "failed", "cancelled"):
            raise Conflict(
                "TASK_NOT_FINISHED",
                f"Task '{task_id}' is {task['status']}: give feedback once it has finished",
                details={"task_id": task_id, "status": task["status"]},
            )
        rid = task_rollout_id(task_id)
        now = utcnow()
        async with self.ctx.db.session() as s:
            row = await s.get(Rollout, rid)
            if row is None:
                status: RolloutStatus = "completed" if task["status"] == "completed" else "failed"
                await s.execute(
                    self._insert()(Rollout)
                    .values(
                        id=rid,
                        agent_id=task.get("agent_id"),
                        task_id=task_id,
                        source="task",
                        status=status,
                        owner=task.get("created_by"),
                        input={"task": task["task_description"]},
                        output=task.get("result"),
                        meta={},
                        created_at=task.get("started_at") or task.get("created_at") or now,
                        updated_at=now,
                        ended_at=task.get("completed_at") or now,
                    )
                    .on_conflict_do_nothing()
                )
                row = await s.get(Rollout, rid)
                if row is None:  # pragma: no cover - the task was deleted meanwhile
                    raise NotFound("TASK_NOT_FOUND", f"Task '{task_id}' not found", details={"task_id": task_id})
            reward = await self._store_reward(
                s,
                row,
                body.score,
                source="feedback",
                created_by=_username(actor),
                comment=body.comment,
                name="feedback",
            )
            data = reward_to_dict(reward)
            event = _event(row, reward.value, "feedback", None)
            await s.commit()
        await notify_reward_listeners([event], scope=self.ctx)
        return data

    # --- reading ---------------------------------------------------------------------------
    def _filtered(self, stmt: Any, actor: Actor, filters: RolloutFilters) -> Any:
        owner = _owner_filter(actor)
        if owner is not None:
            stmt = stmt.where(Rollout.owner == owner)
        if filters.agent_id is not None:
            stmt = stmt.where(Rollout.agent_id == filters.agent_id)
        if filters.source is not None:
            stmt = stmt.where(Rollout.source == filters.source)
        if filters.status is not None:
            stmt = stmt.where(Rollout.status == filters.status)
        if filters.task_id is not None:
            stmt = stmt.where(Rollout.task_id == filters.task_id)
        if filters.parent_id is not None:
            stmt = stmt.where(Rollout.parent_id == filters.parent_id)
        if filters.since is not None:
            stmt = stmt.where(Rollout.created_at >= filters.since)
        if filters.until is not None:
            stmt = stmt.where(Rollout.created_at < filters.until)
        if filters.min_reward is not None:
            stmt = stmt.where(Rollout.reward >= filters.min_reward)
        if filters.max_reward is not None:
            stmt = stmt.where(Rollout.reward <= filters.max_reward)
        if filters.rewarded:
            stmt = stmt.where(Rollout.reward.is_not(None))
        return stmt

    async def list(self, actor: Actor, filters: RolloutFilters) -> dict[str, Any]:
        """A page of the rollouts ``actor`` may see, newest first, with the total count."""
        stmt = self._filtered(select(Rollout), actor, filters)
        async with self.ctx.db.session() as s:
            total = int(await s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
            rows = (
                (
                    await s.execute(
                        stmt.order_by(Rollout.created_at.desc(), Rollout.id.desc())
                        .offset((filters.page - 1) * filters.page_size)
                        .limit(filters.page_size)
                    )
                )
                .scalars()
                .all()
            )
        return {
            "items": [rollout_to_dict(r) for r in rows],
            "total": total,
            "page": filters.page,
            "page_size": filters.page_size,
        }

    async def get(self, actor: Actor, rollout_id: str) -> dict[str, Any]:
        """One rollout with its spans (start order) and rewards (oldest first)."""
        async with self.ctx.db.session() as s:
            row = await self._visible(s, actor, rollout_id)
            spans = (
                (
                    await s.execute(
                        select(TraceSpan)
                        .where(TraceSpan.rollout_id == rollout_id)
                        .order_by(TraceSpan.started_at, TraceSpan.id)
                    )
                )
                .scalars()
                .all()
            )
            rewards = (
                (await s.execute(select(Reward).where(Reward.rollout_id == rollout_id).order_by(Reward.id)))
                .scalars()
                .all()
            )
        return rollout_to_dict(row) | {
            "spans": [span_to_dict(x) for x in spans],
            "rewards": [reward_to_dict(r) for r in rewards],
        }

    async def details(self, actor: Actor, filters: RolloutFilters) -> builtins.list[dict[str, Any]]:
        """A page of rollouts with their spans and rewards (what the dataset export reads)."""
        page = await self.list(actor, filters)
        ids = [item["id"] for item in page["items"]]
        if not ids:
            return []
        async with self.ctx.db.session() as s:
            spans = (
                (
                    await s.execute(
                        select(TraceSpan)
                        .where(TraceSpan.rollout_id.in_(ids))
                        .order_by(TraceSpan.started_at, TraceSpan.id)
                    )
                )
                .scalars()
                .all()
            )
            rewards = (
                (await s.execute(select(Reward).where(Reward.rollout_id.in_(ids)).order_by(Reward.id))).scalars().all()
            )
        by_id: dict[str, dict[str, Any]] = {item["id"]: item | {"spans": [], "rewards": []} for item in page["items"]}
        for span in spans:
            by_id[str(span.rollout_id)]["spans"].append(span_to_dict(span))
        for reward in rewards:
            by_id[reward.rollout_id]["rewards"].append(reward_to_dict(reward))
        return [by_id[i] for i in ids]

    async def window_stats(self, agent_id: int, window: int) -> dict[str, Any]:
        """An agent's last ``window`` finished rollouts: count, success rate and mean reward.

        Success: a reward of 0.5 or more when the rollout has one, else status ``completed``.
        """
        async with self.ctx.db.session() as s:
            rows = (
                await s.execute(
                    select(Rollout.status, Rollout.reward)
                    .where(Rollout.agent_id == agent_id, Rollout.status.in_(("completed", "failed")))
                    .order_by(Rollout.created_at.desc(), Rollout.id.desc())
                    .limit(max(1, window))
                )
            ).all()
        n = len(rows)
        rewards = [float(r.reward) for r in rows if r.reward is not None]
        successes = sum(1 for r in rows if (r.reward >= 0.5 if r.reward is not None else r.status == "completed"))
        return {
            "agent_id": agent_id,
            "window": window,
            "n": n,
            "success_rate": successes / n if n else None,
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "rewarded": len(rewards),
        }
