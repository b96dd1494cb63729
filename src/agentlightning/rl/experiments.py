"""The experiment service: the ``rl_experiments`` table, its state machine and what users ask of it.

Status moves ``created -> queued -> running -> completed | stopped | failed``; a ``running``
experiment goes back to ``queued`` when the server that ran it shut down or died and it can be
resumed from a checkpoint. Every change is a conditional ``UPDATE ... WHERE status IN (...)``, so
concurrent managers and API replicas never move an experiment along an edge that is not allowed.

Routes call :class:`ExperimentService`; :mod:`agentlightning.rl.manager` runs what is queued.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.core.context import AppContext
from agentlightning.errors import (
    Conflict,
    NotFound,
    OperationFailed,
    RateLimited,
    ValidationFailed,
)
from agentlightning.rl.auto.schemas import AgentExperimentCreate
from agentlightning.rl.classic.envs import CustomEnvSpec, EnvError, check_entry_point, validate_env_id
from agentlightning.rl.config import ConfigError, ResourceLimits
from agentlightning.rl.schemas import EnvironmentCreate, EvaluationParams, ExperimentCreate
from agentlightning.rl.validator import validate_off_loop
from agentlightning.storage.db import affected_rows
from agentlightning.storage.models import RLEnvironment, RLExperiment, RLMetricPoint
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.vocabulary import EXPERIMENT_ACTIVE, EXPERIMENT_STATUSES, EXPERIMENT_TERMINAL, ExperimentStatus

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "EnvironmentCreate",
    "EvaluationParams",
    "AgentExperimentCreate",
    "ExperimentCreate",
    "ExperimentService",
    "TRAINING_TOPIC",
    "experiment_dict",
    "latest_resumable",
    "parse_status",
    "transition",
]

TRAINING_TOPIC = "training"
TERMINAL = EXPERIMENT_TERMINAL
ACTIVE = EXPERIMENT_ACTIVE
#: Allowed predecessors of each status.
_FROM: dict[ExperimentStatus, tuple[ExperimentStatus, ...]] = {
    "queued": ("created", "running"),
    "running": ("queued",),
    "completed": ("running",),
    "stopped": ("created", "queued", "running"),
    "failed": ("created", "queued", "running"),
}


def _public_checkpoint(entry: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as the API shows it (no server paths)."""
    return {k: v for k, v in entry.items() if k != "path"} | {"name": os.path.basename(entry.get("path", ""))}


def experiment_dict(exp: RLExperiment) -> dict[str, Any]:
    """The API representation of an experiment."""
    metrics = exp.metrics or {}
    return {
        "id": exp.id,
        "name": exp.name,
        "algorithm": exp.algorithm,
        "kind": exp.kind,
        "status": exp.status,
        "agent_id": exp.agent_id,
        "config": exp.config,
        "backend": exp.backend,
        "metrics": metrics,
        "progress": metrics.get("progress", 1.0 if exp.status == "completed" else 0.0),
        "checkpoints": [_public_checkpoint(c) for c in exp.checkpoints or []],
        "error": exp.error,
        "stop_requested": exp.stop_requested_at is not None,
        "attempts": exp.attempts,
        "created_by": exp.created_by,
        "start_time": exp.start_time,
        "end_time": exp.end_time,
        "created_at": exp.created_at,
        "updated_at": exp.updated_at,
    }


async def transition(
    session: AsyncSession, experiment_id: int, status: str, *, only_from: Iterable[str] | None = None, **values: Any
) -> bool:
    """Move an experiment to ``status`` if its current status allows it; True when it moved.

    ``only_from`` narrows the allowed predecessors; ``values`` sets other columns in the same
    statement. The caller commits.
    """
    allowed = tuple(only_from) if only_from is not None else _FROM[cast(ExperimentStatus, status)]
    stmt = (
        update(RLExperiment)
        .where(RLExperiment.id == experiment_id, RLExperiment.status.in_(allowed))
        .values(status=status, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return affected_rows(result) == 1


class ExperimentService:
    """What the API and the CLI do with experiments; stateless, one per request is fine."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # ----------------------------------------------------------------- queries
    async def _get(self, session: AsyncSession, experiment_id: int) -> RLExperiment:
        exp = await session.get(RLExperiment, experiment_id)
        if exp is None:
            raise NotFound(
                "EXPERIMENT_NOT_FOUND",
                f"Experiment with ID '{experiment_id}' not found",
                details={"experiment_id": experiment_id},
            )
        return exp

    async def get(self, experiment_id: int) -> dict[str, Any]:
        """One experiment."""
        async with self.ctx.db.session() as session:
            return experiment_dict(await self._get(session, experiment_id))

    async def list_experiments(
        self, *, status: str | None = None, algorithm: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """A page of experiments, newest first, with the total count."""
        query: Select[Any] = select(RLExperiment)
        if status:
            query = query.where(RLExperiment.status == status)
        if algorithm:
            query = query.where(RLExperiment.algorithm == algorithm.lower())
        async with self.ctx.db.session() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(query.order_by(RLExperiment.id.desc()).limit(limit).offset(offset))
            items = [experiment_dict(e) for e in rows]
        return {"items": items, "total": int(total or 0), "limit": limit, "offset": offset}

    async def metric_history(
        self, experiment_id: int, *, kind: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> dict[str, Any]:
        """Streamed updates in order; page with ``after_id`` (the last ``id`` you received)."""
        async with self.ctx.db.session() as session:
            await self._get(session, experiment_id)
            query = select(RLMetricPoint).where(
                RLMetricPoint.experiment_id == experiment_id, RLMetricPoint.id > after_id
            )
            if kind:
                query = query.where(RLMetricPoint.kind == kind)
            rows = list(await session.scalars(query.order_by(RLMetricPoint.id).limit(limit)))
        points = [
            {"id": p.id, "kind": p.kind, "timesteps": p.timesteps, "created_at": p.created_at, **p.data} for p in rows
        ]
        return {"items": points, "next_after_id": points[-1]["id"] if points else after_id}

    async def checkpoints(self, experiment_id: int) -> list[dict[str, Any]]:
        """The experiment's checkpoints, oldest first."""
        return (await self.get(experiment_id))["checkpoints"]

    async def checkpoint_path(self, experiment_id: int, checkpoint: str) -> str:
        """The file of ``checkpoint`` ('latest', 'final' or timesteps) of an experiment."""
        async with self.ctx.db.session() as session:
            exp = await self._get(session, experiment_id)
            entries = list(exp.checkpoints or [])
        entry = _select_checkpoint(entries, checkpoint)
        if entry is None or not os.path.exists(entry["path"]):
            raise NotFound(
                "CHECKPOINT_NOT_FOUND",
                f"Experiment '{experiment_id}' has no checkpoint '{checkpoint}' on this server",
                details={"available": [c.get("timesteps") for c in entries]},
            )
        return str(entry["path"])

    # ----------------------------------------------------------------- commands
    async def _check_quota(self, created_by: str | None) -> None:
        """Refuse a user's experiment beyond ``rl_max_active_experiments_per_user`` unfinished ones."""
        if created_by is None:
            return
        cap = self.ctx.settings.rl_max_active_experiments_per_user
        async with self.ctx.db.session() as session:
            active = await session.scalar(
                select(func.count())
                .select_from(RLExperiment)
                .where(RLExperiment.created_by == created_by, RLExperiment.status.in_(tuple(ACTIVE)))
            )
        if int(active or 0) >= cap:
            raise RateLimited(
                "TOO_MANY_ACTIVE_EXPERIMENTS",
                f"You have {active} unfinished experiment(s); at most {cap} may be created, queued or running at "
                "once. Stop one or wait for one to finish.",
                details={"active": int(active or 0), "limit": cap},
                retry_after=30,
            )

    async def create(self, request: ExperimentCreate, created_by: str | None = None) -> dict[str, Any]:
        """Check the caller's quota, validate (in a worker process), insert as ``created``, then queue it."""
        config = request.experiment_config()
        await self._check_quota(created_by)
        custom = await self._custom_envs()
        settings = self.ctx.settings
        try:
            # Validation builds the environment and the model once: in a child process, with a timeout.
            checked = await validate_off_loop(
                config, custom, ResourceLimits.from_settings(settings), settings.rl_validation_timeout_seconds
            )
        except ConfigError as exc:
            raise ValidationFailed(
                "VALIDATION_ERROR",
                f"Invalid experiment configuration: {exc}",
                details={"errors": [p.to_dict() for p in exc.problems]},
            ) from exc
        exp = RLExperiment(
            name=request.name,
            algorithm=checked.config.algorithm,
            config=checked.config.model_dump(mode="json"),
            status="created",
            agent_id=request.agent_id,
            kind="classic",
            created_by=created_by,
            metrics={"total_timesteps": config.total_timesteps, "timesteps": 0, "progress": 0.0, **checked.spaces},
            checkpoints=[],
        )
        return await self._insert_and_queue(exp)

    async def submit(
        self, request: ExperimentCreate | AgentExperimentCreate, created_by: str | None = None
    ) -> dict[str, Any]:
        """Create a classic experiment or an agent optimisation, by the request's shape."""
        if isinstance(request, AgentExperimentCreate):
            return await self.create_agent(request, created_by)
        return await self.create(request, created_by)

    async def create_agent(
        self, request: AgentExperimentCreate, created_by: str | None = None, *, trigger_id: int | None = None
    ) -> dict[str, Any]:
        """Queue an agent optimisation (``apo | bandit | grpo``) with the agent's Auto-RL policy as its budget."""
        from agentlightning.agents.service import AgentService
        from agentlightning.rl.auto.job import optimiser_available
        from agentlightning.rl.auto.policy import PolicyService

        await self._check_quota(created_by)
        agent = await AgentService(self.ctx).get(request.agent_id)
        if not optimiser_available(request.algorithm):
            raise ValidationFailed(
                "VALIDATION_ERROR",
                f"The '{request.algorithm}' optimiser is not available on this server",
                details={"errors": [{"field": "algorithm", "message": "optimiser not installed"}]},
            )
        cfg = request.config
        if (cfg.train is None) != (cfg.heldout is None):
            raise ValidationFailed(
                "VALIDATION_ERROR",
                "Give both inline task lists (train and heldout) or neither",
                details={"errors": [{"field": "config.heldout", "message": "train and heldout go together"}]},
            )
        policy = await PolicyService(self.ctx).get(agent.id)
        config = cfg.model_dump(mode="json")
        config.update(
            algorithm=request.algorithm,
            agent_id=agent.id,
            trigger_id=trigger_id,
            max_evaluations=cfg.max_evaluations or policy.max_evaluations,
            max_wall_seconds=cfg.max_wall_seconds or policy.max_wall_seconds,
            alpha=cfg.alpha or policy.alpha,
            train_tasks=cfg.train_tasks or policy.train_tasks,
            heldout_tasks=cfg.heldout_tasks or policy.heldout_tasks,
            options={**policy.options, **cfg.options},
        )
        exp = RLExperiment(
            name=request.name,
            algorithm=request.algorithm,
            config=config,
            status="created",
            agent_id=agent.id,
            kind="agent",
            created_by=created_by,
            metrics={"total_timesteps": config["max_evaluations"], "timesteps": 0, "progress": 0.0},
            checkpoints=[],
        )
        return await self._insert_and_queue(exp)

    async def _insert_and_queue(self, exp: RLExperiment) -> dict[str, Any]:
        async with self.ctx.db.session() as session:
            session.add(exp)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                if await session.scalar(select(RLExperiment.id).where(RLExperiment.name == exp.name)):
                    raise Conflict(
                        "EXPERIMENT_NAME_TAKEN",
                        f"An experiment named '{exp.name}' already exists",
                        details={"name": exp.name},
                    ) from exc
                raise ValidationFailed(
                    "VALIDATION_ERROR",
                    f"Invalid reference: agent {exp.agent_id} does not exist",
                    details={"errors": [{"field": "agent_id", "message": "no such agent"}]},
                ) from exc
            await transition(session, exp.id, "queued")
            await session.commit()
            await session.refresh(exp)
            data = experiment_dict(exp)
        await self.publish(data, "queued")
        return data

    async def stop(self, experiment_id: int) -> dict[str, Any]:
        """Stop an experiment: at once if it has not started, else at its next stop check."""
        now = utcnow()
        async with self.ctx.db.session() as session:
            exp = await self._get(session, experiment_id)
            if exp.status in TERMINAL:
                raise Conflict(
                    "EXPERIMENT_FINISHED",
                    f"Experiment '{experiment_id}' is already {exp.status}",
                    details={"status": exp.status},
                )
            moved = await transition(
                session, experiment_id, "stopped", only_from=("created", "queued"), stop_requested_at=now, end_time=now
            )
            if not moved:  # running (or just claimed): the manager that owns it stops it
                await session.execute(
                    update(RLExperiment)
                    .where(RLExperiment.id == experiment_id, RLExperiment.stop_requested_at.is_(None))
                    .values(stop_requested_at=now, updated_at=now)
                )
            await session.commit()
            session.expire_all()
            data = experiment_dict(await self._get(session, experiment_id))
        if moved:
            await self.publish(data, "stopped")
        return data

    async def evaluate(self, experiment_id: int, params: EvaluationParams) -> dict[str, Any]:
        """Evaluate a checkpoint of a running or finished experiment (in a worker process: the RL
        manager's, or, in a process that runs none, one started for this evaluation)."""
        from agentlightning.rl.backends import backend_name, make_backend
        from agentlightning.rl.classic.evaluation import EvaluationRequest

        path = await self.checkpoint_path(experiment_id, params.checkpoint)
        async with self.ctx.db.session() as session:
            exp = await self._get(session, experiment_id)
            config, backend = dict(exp.config), exp.backend
        request = EvaluationRequest(path, config, params.n_episodes, params.deterministic, params.seed)
        manager = self.ctx.services.get("rl")
        try:
            if manager is not None:
                result = await manager.evaluate(request, backend)
            else:
                own = make_backend(self.ctx.settings, backend_name(self.ctx.settings, backend))
                try:
                    result = await own.evaluate(request)
                finally:
                    await own.close()
        except Exception as exc:  # noqa: BLE001 - a broken checkpoint or environment
            raise OperationFailed("EVALUATION_FAILED", f"Evaluation failed: {type(exc).__name__}: {exc}") from exc
        result = {**result, "checkpoint": os.path.basename(path)}
        async with self.ctx.db.session() as session:
            timesteps = _timesteps_of(path, await self._get(session, experiment_id))
            session.add(
                RLMetricPoint(
                    experiment_id=experiment_id,
                    kind="evaluation",
                    timesteps=timesteps,
                    data={"on_demand": True, **result},
                )
            )
            await session.commit()
        return {"experiment_id": experiment_id, "timesteps": timesteps, **result}

    # ----------------------------------------------------------------- the manager's side
    # The RL manager runs experiments; every change it makes to ``rl_experiments`` and
    # ``rl_metric_points`` goes through these methods, so this module stays the tables' one writer.

    async def row(self, experiment_id: int) -> RLExperiment | None:
        """The stored experiment with its server-side details (checkpoint paths, lease), or None."""
        async with self.ctx.db.session() as session:
            return await session.get(RLExperiment, experiment_id)

    async def queued_ids(self, limit: int, only_ids: set[int] | None = None) -> list[int]:
        """The oldest queued experiments of any kind (at most ``limit``), optionally among ``only_ids``."""
        query = select(RLExperiment.id).where(RLExperiment.status == "queued")
        if only_ids is not None:
            query = query.where(RLExperiment.id.in_(only_ids))
        async with self.ctx.db.session() as session:
            return list(await session.scalars(query.order_by(RLExperiment.id).limit(limit)))

    async def claim(self, experiment_id: int, *, owner: str, backend: str) -> RLExperiment | None:
        """Move a queued experiment to ``running`` under ``owner``'s lease; the row when this caller won."""
        now = utcnow()
        async with self.ctx.db.session() as session:
            exp = await session.get(RLExperiment, experiment_id)
            if exp is None or exp.status != "queued":
                return None
            claimed = await transition(
                session,
                experiment_id,
                "running",
                lease_owner=owner,
                heartbeat_at=now,
                attempts=RLExperiment.attempts + 1,
                start_time=exp.start_time or now,
                end_time=None,
                backend=backend,
            )
            await session.commit()
            if not claimed:  # another manager was faster
                return None
            await session.refresh(exp)
            return exp

    async def record_updates(
        self, experiment_id: int, updates: list[dict[str, Any]]
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Store a running job's updates (progress, evaluations, checkpoints) in one transaction.

        Returns the experiment as the API shows it and the events to publish (each with its
        ``change``), or ``(None, [])`` when the experiment no longer exists.
        """
        events: list[dict[str, Any]] = []
        async with self.ctx.db.session() as session:
            exp = await session.get(RLExperiment, experiment_id)
            if exp is None:
                return None, []
            metrics = dict(exp.metrics or {})
            checkpoints = list(exp.checkpoints or [])
            for update_ in updates:
                kind = update_.get("type")
                data = {k: v for k, v in update_.items() if k not in ("type", "data")}
                if kind == "progress":
                    total = update_.get("total_timesteps") or metrics.get("total_timesteps") or 1
                    metrics.update({k: v for k, v in update_.items() if k != "type"})
                    metrics["progress"] = round(min(update_["timesteps"] / total, 1.0), 4)
                    if exp.start_time is not None:
                        metrics["training_seconds"] = round((utcnow() - as_utc(exp.start_time)).total_seconds(), 3)
                    session.add(
                        RLMetricPoint(
                            experiment_id=experiment_id, kind="progress", timesteps=update_["timesteps"], data=data
                        )
                    )
                    events.append({"change": "progress", **data, "progress": metrics["progress"]})
                elif kind == "evaluation":
                    metrics["final_evaluation" if update_.get("final") else "last_evaluation"] = data
                    session.add(
                        RLMetricPoint(
                            experiment_id=experiment_id, kind="evaluation", timesteps=update_["timesteps"], data=data
                        )
                    )
                    events.append({"change": "evaluation", **data})
                elif kind == "checkpoint":
                    entry = {**data, "created_at": utcnow().isoformat()}
                    checkpoints = [c for c in checkpoints if c.get("path") != entry["path"]] + [entry]
                    events.append({"change": "checkpoint", "timesteps": entry["timesteps"], "final": entry["final"]})
            exp.metrics = metrics
            exp.checkpoints = checkpoints
            await session.commit()
            return experiment_dict(exp), events

    async def finish(
        self, experiment_id: int, status: str, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Record how a run ended (``completed | stopped | failed``) and release its lease.

        Returns the experiment when it moved (None when it was gone or already finished).
        """
        now = utcnow()
        async with self.ctx.db.session() as session:
            exp = await session.get(RLExperiment, experiment_id)
            if exp is None:
                return None
            metrics = dict(exp.metrics or {})
            if result is not None:
                metrics["timesteps"] = result.get("timesteps", metrics.get("timesteps"))
                if result.get("evaluation"):
                    metrics["final_evaluation"] = result["evaluation"]
                if status == "completed":
                    metrics["progress"] = 1.0
            if exp.start_time is not None:
                metrics["training_seconds"] = round((now - as_utc(exp.start_time)).total_seconds(), 3)
            moved = await transition(
                session,
                experiment_id,
                status,
                error=error,
                end_time=now,
                metrics=metrics,
                lease_owner=None,
                heartbeat_at=None,
            )
            await session.commit()
            if not moved:
                return None
            session.expire_all()
            exp = await session.get(RLExperiment, experiment_id)
            return experiment_dict(exp) if exp is not None else None

    async def requeue(self, experiment_id: int) -> dict[str, Any] | None:
        """Queue a running experiment again (to resume from its checkpoint); the experiment when it moved."""
        async with self.ctx.db.session() as session:
            moved = await transition(
                session,
                experiment_id,
                "queued",
                only_from=("running",),
                lease_owner=None,
                heartbeat_at=None,
                error=None,
            )
            await session.commit()
            if not moved:
                return None
            exp = await session.get(RLExperiment, experiment_id)
            return experiment_dict(exp) if exp is not None else None

    async def renew_leases(self, experiment_ids: list[int], owner: str) -> None:
        """Heartbeat: extend ``owner``'s leases on the given experiments."""
        async with self.ctx.db.session() as session:
            await session.execute(
                update(RLExperiment)
                .where(RLExperiment.id.in_(experiment_ids), RLExperiment.lease_owner == owner)
                .values(heartbeat_at=utcnow())
            )
            await session.commit()

    async def lease_states(self, experiment_ids: list[int]) -> list[Any]:
        """``(id, lease_owner, stop_requested_at, status)`` of each given experiment."""
        async with self.ctx.db.session() as session:
            query = select(
                RLExperiment.id, RLExperiment.lease_owner, RLExperiment.stop_requested_at, RLExperiment.status
            ).where(RLExperiment.id.in_(experiment_ids))
            return list((await session.execute(query)).all())

    async def running_leases(self) -> list[Any]:
        """``(id, lease_owner, heartbeat_at)`` of every running experiment."""
        async with self.ctx.db.session() as session:
            query = select(RLExperiment.id, RLExperiment.lease_owner, RLExperiment.heartbeat_at).where(
                RLExperiment.status == "running"
            )
            return list((await session.execute(query)).all())

    async def publish(self, data: dict[str, Any], change: str, **extra: Any) -> None:
        """Publish a ``training_update`` event about an experiment."""
        payload = {
            "experiment_id": data["id"],
            "name": data["name"],
            "algorithm": data["algorithm"],
            "agent_id": data.get("agent_id"),  # lets /ws/agents subscriptions scoped to an agent see it
            "status": data["status"],
            "change": change,
            **extra,
        }
        await self.ctx.events.publish(TRAINING_TOPIC, "training_update", payload)

    # ----------------------------------------------------------------- environments
    async def _custom_envs(self) -> dict[str, CustomEnvSpec]:
        async with self.ctx.db.session() as session:
            rows = await session.scalars(select(RLEnvironment))
            return {
                r.env_id: CustomEnvSpec(r.env_id, r.entry_point, dict(r.kwargs or {}), r.max_episode_steps)
                for r in rows
            }

    async def list_environments(self) -> dict[str, Any]:
        """Registered custom environments and the ids of Gymnasium's built-in ones."""
        from agentlightning.rl.classic.envs import list_builtin_envs

        custom = await self._custom_envs()
        builtin = [e for e in list_builtin_envs() if e not in custom]
        return {
            "custom": [spec.to_dict() for spec in custom.values()],
            "builtin": builtin,
            "allowed_modules": list(self.ctx.settings.rl_env_allowed_modules),
        }

    async def register_environment(self, request: EnvironmentCreate, created_by: str | None = None) -> dict[str, Any]:
        """Register a user environment from an allow-listed module after creating it once."""
        from agentlightning.rl.classic.envs import ensure_registered, env_spaces, resolve

        spec = CustomEnvSpec(request.env_id, request.entry_point, request.kwargs, request.max_episode_steps)
        custom = await self._custom_envs()

        def _check() -> dict[str, str]:
            validate_env_id(spec.env_id)
            if spec.env_id not in custom:
                try:
                    resolve(spec.env_id)
                except EnvError:
                    pass
                else:
                    raise EnvError(f"{spec.env_id!r} is a built-in Gymnasium environment")
            check_entry_point(spec.entry_point, self.ctx.settings.rl_env_allowed_modules)
            ensure_registered(spec)
            obs, act = env_spaces(spec.env_id)
            return {"observation_space": str(obs), "action_space": str(act)}

        try:
            spaces = await asyncio.to_thread(_check)
        except EnvError as exc:
            raise ValidationFailed(
                "VALIDATION_ERROR", str(exc), details={"errors": [{"field": "entry_point", "message": str(exc)}]}
            ) from exc
        async with self.ctx.db.session() as session:
            session.add(
                RLEnvironment(
                    env_id=spec.env_id,
                    entry_point=spec.entry_point,
                    kwargs=spec.kwargs,
                    max_episode_steps=spec.max_episode_steps,
                    description=request.description,
                    created_by=created_by,
                )
            )
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(
                    "ENVIRONMENT_EXISTS",
                    f"Environment '{spec.env_id}' is already registered",
                    details={"env_id": spec.env_id},
                ) from exc
        return {**spec.to_dict(), **spaces, "description": request.description}


def _select_checkpoint(entries: list[dict[str, Any]], which: str) -> dict[str, Any] | None:
    if not entries:
        return None
    if which == "final":
        finals = [c for c in entries if c.get("final")]
        return finals[-1] if finals else None
    if which == "latest":
        return max(entries, key=lambda c: (c.get("timesteps", 0), bool(c.get("final"))))
    try:
        step = int(which)
    except ValueError:
        return None
    matches = [c for c in entries if c.get("timesteps") == step]
    return matches[-1] if matches else None


def _timesteps_of(path: str, exp: RLExperiment) -> int:
    for entry in exp.checkpoints or []:
        if entry.get("path") == path:
            return int(entry.get("timesteps", 0))
    return 0


def latest_resumable(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The checkpoint with the most timesteps whose file is present here, if any."""
    present = [c for c in entries if c.get("path") and os.path.exists(c["path"])]
    return max(present, key=lambda c: (c.get("timesteps", 0), bool(c.get("final")))) if present else None


def parse_status(value: str | None) -> str | None:
    """Validate a status filter."""
    if value is not None and value not in EXPERIMENT_STATUSES:
        raise ValidationFailed(
            "VALIDATION_ERROR",
            f"unknown status {value!r}",
            details={"errors": [{"field": "status", "message": f"one of {list(EXPERIMENT_STATUSES)}"}]},
        )
    return value
