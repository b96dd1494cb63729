"""The agent registry: create, read, update, delete, restart and report on agents.

Agents are addressed by numeric id or unique name.  Any change to what an agent does (type,
prompt, model, tools, ...) increments its ``config_version``, which is part of the response
cache key, so a changed agent never serves answers cached for its old configuration.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from agentlightning.agents.llm import API_KEY_FIELD, validate_llm_config
from agentlightning.agents.profile import AgentProfile
from agentlightning.agents.schemas import AgentConfigIn, AgentCreate, AgentUpdate
from agentlightning.agents.templates import TEMPLATES, get_template
from agentlightning.agents.tools.registry import default_registry
from agentlightning.errors import Conflict, NotFound, ValidationFailed
from agentlightning.observability.metrics import AGENT_ACTIVE_COUNT
from agentlightning.storage import cache_keys
from agentlightning.storage.models import Agent, Task
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.validation import parse_db_id
from agentlightning.vocabulary import AGENT_STATUSES, TASK_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from agentlightning.core.context import AppContext
    from agentlightning.settings import Settings

__all__ = ["AGENT_STATUSES", "AgentService", "agent_to_dict"]

#: How an agent's own API key is shown (and, sent back unchanged, means "keep it").
MASKED = "********"
SUCCESS_WINDOW = 100
#: Compare-and-set attempts of an update that meets concurrent writers.
_CAS_ATTEMPTS = 5


def agent_to_dict(row: Agent) -> dict[str, Any]:
    """The API representation of an agent."""
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "description": row.description,
        "config": _redacted(row.config or {}),
        "config_version": row.config_version,
        "status": row.status,
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
        "performance_metrics": row.performance_metrics or {},
        "last_activity": as_utc(row.last_activity),
    }


def _redacted(config: dict[str, Any]) -> dict[str, Any]:
    """An agent's config as the API shows it: its own upstream key is write-only."""
    return {**config, API_KEY_FIELD: MASKED} if config.get(API_KEY_FIELD) else config


def _clean_config(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate known keys, drop nulls, and check tool names and the LLM upstream."""
    try:
        parsed = AgentConfigIn.model_validate(config)
    except ValueError as exc:
        raise ValidationFailed("VALIDATION_ERROR", f"Invalid agent config: {exc}") from exc
    clean = {k: v for k, v in parsed.model_dump().items() if v is not None}
    declared = set(clean.get("tools", []))
    for variant in clean.get("variants") or []:  # the bandit's variants may name their own tool sets
        declared |= set(variant.get("tools") or [])
    unknown = sorted(declared - set(default_registry().names()))
    if unknown:
        raise ValidationFailed(
            "VALIDATION_ERROR",
            f"Unknown tools: {', '.join(unknown)}",
            details={"unknown_tools": unknown, "available_tools": default_registry().names()},
        )
    try:
        validate_llm_config(clean, settings)
    except ValueError as exc:
        raise ValidationFailed("VALIDATION_ERROR", f"Invalid agent config: {exc}") from exc
    return clean


#: The agents' ``last_activity`` when a worker claimed their tasks, on PostgreSQL: a CTE that the
#: queue's claim statement runs (it defines ``leased`` and ``:now``; the agents' rows are already
#: locked by the claim).  Written here, by the owner of ``agents``; the queue only runs it.
PG_TOUCH_ACTIVITY_CTE = """
        , touched AS (
            UPDATE agents SET last_activity = :now WHERE id IN (SELECT DISTINCT agent_id FROM leased)
            RETURNING id
        )"""


class AgentService:
    """Registry operations on the ``agents`` table."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # --- lookup ----------------------------------------------------------------------------
    async def _available_names(self, limit: int = 50) -> list[str]:
        async with self.ctx.db.session() as s:
            rows = await s.execute(select(Agent.name).order_by(Agent.id).limit(limit))
            return [r[0] for r in rows]

    async def not_found(self, ref: int | str) -> NotFound:
        """The spec's ``AGENT_NOT_FOUND`` error with the available agents in ``details``."""
        return NotFound(
            "AGENT_NOT_FOUND",
            f"Agent with ID '{ref}' not found",
            details={"agent_id": str(ref), "available_agents": await self._available_names()},
        )

    async def get(self, ref: int | str) -> Agent:
        """The agent with numeric id or name ``ref``."""
        async with self.ctx.db.session() as s:
            row = await s.scalar(self._where_ref(select(Agent), ref))
        if row is None:
            raise await self.not_found(ref)
        return row

    @staticmethod
    def _where_ref(stmt: Any, ref: int | str) -> Any:
        number = parse_db_id(ref)
        if number is not None:  # an id (0 when out of range: matches nothing)
            return stmt.where(Agent.id == number)
        return stmt.where(Agent.name == str(ref))

    async def profile(self, ref: int | str) -> AgentProfile:
        """The agent's effective configuration."""
        return AgentProfile.from_row(await self.get(ref))

    async def resources(self, ref: int | str) -> dict[str, Any]:
        """The agent's currently promoted resources: what the runtime, the SDK's
        ``enable_rl_training()`` and the gateway run it with.

        Read from the agent row: ``system_prompt``, ``model``, ``config.temperature``,
        ``config.tools``, ``config.adapter``, ``config.variant``; ``version`` is
        ``config.resources_version`` (1 until a promotion bumps it through :meth:`update`).
        """
        profile = await self.profile(ref)
        config = profile.config
        return {
            "agent_id": profile.id,
            "version": int(config.get("resources_version") or 1),
            "system_prompt": profile.system_prompt,
            "model": config.get("model") or None,
            "temperature": profile.temperature,
            "tools": profile.tools,
            "adapter": config.get("adapter"),
            "variant": config.get("variant"),
        }

    async def list(
        self, *, type: str | None = None, status: str | None = None, page: int = 1, page_size: int = 50
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """A page of agents (filtered by type/status) and the total count."""
        stmt = select(Agent)
        if type:
            stmt = stmt.where(Agent.type == type)
        if status:
            stmt = stmt.where(Agent.status == status)
        async with self.ctx.db.session() as s:
            total = int(await s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
            rows = (
                (await s.execute(stmt.order_by(Agent.id).offset((page - 1) * page_size).limit(page_size)))
                .scalars()
                .all()
            )
        return [agent_to_dict(r) for r in rows], total

    # --- changes ---------------------------------------------------------------------------
    async def create(self, body: AgentCreate) -> dict[str, Any]:
        """Create an agent, optionally copying a template."""
        config: dict[str, Any] = {}
        type_, description = body.type, body.description
        if body.template:
            template = get_template(body.template)
            if template is None:
                raise NotFound(
                    "TEMPLATE_NOT_FOUND",
                    f"No agent template '{body.template}'",
                    details={"available_templates": sorted(TEMPLATES)},
                )
            config = template.to_dict()["config"]
            config["template"] = template.name
            type_ = type_ or template.type
            description = description or template.description
        config.update(body.config.model_dump(exclude_none=True))
        row = Agent(
            name=body.name,
            type=str(type_),
            description=description,
            config=_clean_config(config, self.ctx.settings),
            status=body.status,
        )
        async with self.ctx.db.session() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise Conflict("AGENT_NAME_TAKEN", f"An agent named '{body.name}' already exists") from exc
        await self.refresh_active_gauge()
        return agent_to_dict(row)

    def _merge_config(self, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """``current`` with ``changes`` merged in (null removes a key), validated."""
        merged = dict(current)
        new_key = changes.get(API_KEY_FIELD)
        if new_key == MASKED or (new_key is None and API_KEY_FIELD not in changes):
            # Re-pointing an agent's upstream never carries the old key along to it.
            if "base_url" in changes and changes["base_url"] != merged.get("base_url"):
                merged.pop(API_KEY_FIELD, None)
        for key, value in changes.items():
            if key == API_KEY_FIELD and value == MASKED:
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return _clean_config(merged, self.ctx.settings) | {k: v for k, v in merged.items() if k == "template"}

    async def update(self, ref: int | str, body: AgentUpdate) -> dict[str, Any]:
        """Apply a partial update; config keys merge, and the config version increments on change.

        The write is a compare-and-set on ``config_version`` (``UPDATE ... WHERE config_version =
        <the version read>``), retried on a fresh read when another writer got in between: on SQLite,
        where the read takes no lock, a concurrent change (an Auto-RL promotion) is never lost.
        """
        for _attempt in range(_CAS_ATTEMPTS):
            async with self.ctx.db.session() as s:
                row = await s.scalar(self._where_ref(select(Agent), ref).with_for_update())
                if row is None:
                    raise await self.not_found(ref)
                values: dict[str, Any] = {}
                if body.config is not None:
                    merged = self._merge_config(row.config or {}, body.config)
                    if merged != (row.config or {}):
                        values["config"] = merged
                for attr in ("name", "type", "description"):
                    value = getattr(body, attr)
                    if value is not None and value != getattr(row, attr):
                        values[attr] = value
                if values:
                    values["config_version"] = (row.config_version or 1) + 1
                if body.status is not None:
                    values["status"] = body.status
                values["updated_at"] = utcnow()
                written = await self._write_if_version(s, row.id, row.config_version, values)
                if not written:
                    await s.rollback()
                    continue
                try:
                    await s.commit()
                except IntegrityError as exc:
                    raise Conflict("AGENT_NAME_TAKEN", f"An agent named '{body.name}' already exists") from exc
                await s.refresh(row)
            await self.ctx.cache.delete(cache_keys.agent_status(row.id))
            await self.refresh_active_gauge()
            return agent_to_dict(row)
        raise Conflict(
            "AGENT_CHANGED",
            f"Agent '{ref}' kept changing while it was being updated; try again",
            details={"agent_id": str(ref)},
        )

    @staticmethod
    async def _write_if_version(session: AsyncSession, agent_id: int, expected: int, values: dict[str, Any]) -> bool:
        """``UPDATE agents SET ... WHERE id = :id AND config_version = :expected``; False when no row matched."""
        try:
            result = await session.execute(
                update(Agent).where(Agent.id == agent_id, Agent.config_version == expected).values(**values)
            )
        except IntegrityError as exc:
            raise Conflict("AGENT_NAME_TAKEN", f"An agent named '{values.get('name')}' already exists") from exc
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def update_config_if_version(
        self, session: AsyncSession, agent_id: int, changes: dict[str, Any], *, expected_version: int
    ) -> dict[str, Any]:
        """Merge ``changes`` into the agent's config in ``session`` only if its ``config_version`` is
        still ``expected_version`` (one ``UPDATE ... WHERE config_version = :expected``); the caller
        commits, with its own rows in the same transaction, then calls :meth:`changed`.

        Raises ``Conflict("RESOURCES_CHANGED")`` when the agent was edited since that version (the
        change is refused, never laid over the edit) and ``NotFound`` when it is gone.
        """
        row = await session.scalar(select(Agent).where(Agent.id == agent_id))
        if row is None:
            raise await self.not_found(agent_id)
        if row.config_version == expected_version:
            merged = self._merge_config(row.config or {}, changes)
            values = {"config": merged, "config_version": expected_version + 1, "updated_at": utcnow()}
            if await self._write_if_version(session, agent_id, expected_version, values):
                await session.refresh(row)
                return agent_to_dict(row)
        current = await session.scalar(select(Agent.config_version).where(Agent.id == agent_id))
        raise Conflict(
            "RESOURCES_CHANGED",
            f"Agent {agent_id} was changed (config version {expected_version} -> {current}); the change is refused",
            details={"agent_id": agent_id, "expected_version": expected_version, "version": current},
        )

    async def changed(self, agent_id: int) -> None:
        """After a caller's committed :meth:`update_config_if_version`: drop what the cache holds of the agent."""
        await self.ctx.cache.delete(cache_keys.agent_status(agent_id))

    async def delete(self, ref: int | str) -> dict[str, Any]:
        """Delete an agent; its unfinished tasks are cancelled (finished ones keep their history)."""
        from agentlightning.agents.scheduler import cancel_agent_tasks  # tasks are the scheduler's to write

        agent = await self.get(ref)
        async with self.ctx.db.session() as s:
            events = await cancel_agent_tasks(s, agent, "agent deleted")
            await s.execute(delete(Agent).where(Agent.id == agent.id))
            await s.commit()
        await self.ctx.events.announce(events)
        cancelled_ids = [e["data"]["task_id"] for e in events]
        await self.ctx.cache.delete(cache_keys.agent_status(agent.id))
        await self.ctx.cache.delete_prefix(f"agent:response:{agent.id}:")
        await self.refresh_active_gauge()
        return {"id": agent.id, "name": agent.name, "deleted": True, "cancelled_tasks": cancelled_ids}

    async def restart(self, ref: int | str) -> dict[str, Any]:
        """Bring an agent back to ``active`` with fresh state: status cache cleared, stale leases released."""
        from agentlightning.agents.scheduler import release_expired_leases  # tasks are the scheduler's

        agent = await self.get(ref)
        async with self.ctx.db.session() as s:
            await s.execute(update(Agent).where(Agent.id == agent.id).values(status="active", last_activity=utcnow()))
            released_ids = await release_expired_leases(s, agent.id)
            await s.commit()
        await self.ctx.cache.delete(cache_keys.agent_status(agent.id))
        await self.ctx.events.publish("system", "agent_restarted", {"agent_id": agent.id, "agent_name": agent.name})
        await self.refresh_active_gauge()
        status = await self.status(agent.id, use_cache=False)
        return status | {"released_tasks": released_ids}

    @staticmethod
    async def touch_activity(session: AsyncSession, agent_ids: Iterable[int], now: datetime) -> None:
        """Set the agents' ``last_activity`` inside the caller's transaction (a worker claimed their
        tasks; SQLite: PostgreSQL's claim runs :data:`PG_TOUCH_ACTIVITY_CTE`)."""
        ids = sorted(set(agent_ids))
        if ids:
            await session.execute(update(Agent).where(Agent.id.in_(ids)).values(last_activity=now))

    # --- status ----------------------------------------------------------------------------
    async def detail(self, ref: int | str) -> dict[str, Any]:
        """One agent with its live status under ``runtime``."""
        agent = agent_to_dict(await self.get(ref))
        agent["runtime"] = await self.status(agent["id"])
        return agent

    async def status(self, ref: int | str, *, use_cache: bool = True) -> dict[str, Any]:
        """Live status of one agent (cached 5 minutes under ``agent:status:{id}``)."""
        agent = await self.get(ref)
        key = cache_keys.agent_status(agent.id)
        if use_cache:
            cached = await self.ctx.cache.get_json(key, stat="agent_status")
            if cached is not None:
                return cached
        stats = (await self._task_stats([agent.id])).get(agent.id, {})
        status = {
            "agent_id": agent.id,
            "name": agent.name,
            "type": agent.type,
            "status": agent.status,
            "config_version": agent.config_version,
            "max_concurrency": AgentProfile.from_row(agent).max_concurrency,
            "last_activity": as_utc(agent.last_activity),
            **_stats_defaults(stats),
        }
        await self._store_metrics(agent.id, status)
        await self.ctx.cache.set_json(key, _jsonable(status), cache_keys.AGENT_STATUS_TTL)
        return _jsonable(status)

    async def overview(self) -> dict[str, Any]:
        """Every agent's state plus queue and worker totals (``GET /api/v2/agents/status``)."""
        async with self.ctx.db.session() as s:
            agents = (await s.execute(select(Agent).order_by(Agent.id))).scalars().all()
            queue = dict((await s.execute(select(Task.status, func.count()).group_by(Task.status))).all())
            workers = int(
                await s.scalar(select(func.count(func.distinct(Task.lease_owner))).where(Task.status == "running")) or 0
            )
        stats = await self._task_stats([a.id for a in agents])
        by_status: dict[str, int] = {}
        by_type: dict[str, int] = {}
        items = []
        for a in agents:
            by_status[a.status] = by_status.get(a.status, 0) + 1
            by_type[a.type] = by_type.get(a.type, 0) + 1
            items.append(
                {"id": a.id, "name": a.name, "type": a.type, "status": a.status, **_stats_defaults(stats.get(a.id, {}))}
            )
        self._set_gauge(agents)
        return {
            "total_agents": len(agents),
            "by_status": by_status,
            "by_type": by_type,
            "queue": {s: int(queue.get(s, 0)) for s in TASK_STATUSES},
            "busy_workers": workers,
            "agents": items,
        }

    async def _task_stats(self, agent_ids: builtins.list[int]) -> dict[int, dict[str, Any]]:
        """Per agent: running/pending counts, success rate and mean time over recent finished tasks."""
        if not agent_ids:
            return {}
        since = utcnow() - timedelta(days=1)
        async with self.ctx.db.session() as s:
            live = await s.execute(
                select(
                    Task.agent_id,
                    func.sum(case((Task.status == "running", 1), else_=0)),
                    func.sum(case((Task.status == "pending", 1), else_=0)),
                )
                .where(Task.agent_id.in_(agent_ids), Task.status.in_(("running", "pending")))
                .group_by(Task.agent_id)
            )
            recent = await s.execute(
                select(
                    Task.agent_id,
                    func.sum(case((Task.status == "completed", 1), else_=0)),
                    func.sum(case((Task.status == "failed", 1), else_=0)),
                    func.avg(Task.execution_time_ms),
                )
                .where(
                    Task.agent_id.in_(agent_ids),
                    Task.status.in_(("completed", "failed")),
                    Task.completed_at >= since,
                )
                .group_by(Task.agent_id)
            )
            out: dict[int, dict[str, Any]] = {}
            for agent_id, running, pending in live:
                out.setdefault(agent_id, {}).update(running=int(running or 0), pending=int(pending or 0))
            for agent_id, done, failed, avg_ms in recent:
                finished = int(done or 0) + int(failed or 0)
                out.setdefault(agent_id, {}).update(
                    completed_24h=int(done or 0),
                    failed_24h=int(failed or 0),
                    success_rate=(int(done or 0) / finished) if finished else None,
                    avg_execution_ms=float(avg_ms) if avg_ms is not None else None,
                )
        return out

    async def _store_metrics(self, agent_id: int, status: dict[str, Any]) -> None:
        metrics = {k: status.get(k) for k in ("success_rate", "avg_execution_ms", "completed_24h", "failed_24h")}
        async with self.ctx.db.session() as s:
            await s.execute(update(Agent).where(Agent.id == agent_id).values(performance_metrics=metrics))
            await s.commit()

    # --- selection -------------------------------------------------------------------------
    async def pick_for_type(self, agent_type: str) -> Agent:
        """The active agent of ``agent_type`` with the lowest load, preferring recent success.

        When no agent has that type, an active agent *named* ``agent_type`` answers for it: the
        starter ``general_assistant`` (type ``assistant``) is reached as ``agent_type:
        "general_assistant"`` too, as the spec's ``"agent_type": "data_agent"`` reaches
        ``data_agent``. A real type always wins over a name.
        """
        async with self.ctx.db.session() as s:
            candidates = (
                (
                    await s.execute(
                        select(Agent).where(Agent.type == agent_type, Agent.status == "active").order_by(Agent.id)
                    )
                )
                .scalars()
                .all()
            )
            if not candidates:
                named = await s.scalar(select(Agent).where(Agent.name == agent_type, Agent.status == "active"))
                if named is not None:
                    return named
                types = sorted({t for (t,) in await s.execute(select(Agent.type).where(Agent.status == "active"))})
                raise NotFound(
                    "AGENT_NOT_FOUND",
                    f"No active agent of type '{agent_type}'",
                    details={
                        "agent_type": agent_type,
                        "available_types": types,
                        "available_agents": await self._available_names(),
                    },
                )
        if len(candidates) == 1:
            return candidates[0]
        stats = await self._task_stats([a.id for a in candidates])

        def score(a: Agent) -> tuple[float, int]:
            st = stats.get(a.id, {})
            load = (st.get("running", 0) + st.get("pending", 0)) / AgentProfile.from_row(a).max_concurrency
            success = st.get("success_rate")
            return (load - 0.5 * (success if success is not None else 1.0), a.id)

        return min(candidates, key=score)

    async def resolve_for_assign(self, agent_id: int | str | None, agent_type: str | None) -> Agent:
        """The agent a new task goes to: by id/name when given, else by type."""
        if agent_id is not None:
            agent = await self.get(agent_id)
            if agent_type is not None and agent_type not in (agent.type, agent.name):
                raise ValidationFailed(
                    "VALIDATION_ERROR", f"Agent '{agent.name}' is of type '{agent.type}', not '{agent_type}'"
                )
            if agent.status == "disabled":
                raise Conflict("AGENT_DISABLED", f"Agent '{agent.name}' is disabled", details={"agent_id": agent.id})
            return agent
        assert agent_type is not None
        return await self.pick_for_type(agent_type)

    # --- metrics ---------------------------------------------------------------------------
    async def refresh_active_gauge(self) -> None:
        """Recompute ``agent_active_count{type}``."""
        async with self.ctx.db.session() as s:
            agents = (await s.execute(select(Agent))).scalars().all()
        self._set_gauge(agents)

    @staticmethod
    def _set_gauge(agents: Any) -> None:
        counts: dict[str, int] = {}
        for a in agents:
            counts.setdefault(a.type, 0)
            if a.status == "active":
                counts[a.type] += 1
        for type_, n in counts.items():
            AGENT_ACTIVE_COUNT.labels(type=type_).set(n)


def _stats_defaults(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "running": stats.get("running", 0),
        "pending": stats.get("pending", 0),
        "completed_24h": stats.get("completed_24h", 0),
        "failed_24h": stats.get("failed_24h", 0),
        "success_rate": stats.get("success_rate"),
        "avg_execution_ms": stats.get("avg_execution_ms"),
    }


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return to_jsonable_python(value)
