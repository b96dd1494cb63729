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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.core.context import AppContext
from agentlightning.errors import (
    Conflict,
    NotFound,
    OperationFailed,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from agentlightning.rl.classic.envs import CustomEnvSpec, EnvError, check_entry_point, validate_env_id
from agentlightning.rl.config import ConfigError, ExperimentConfig, ResourceLimits
from agentlightning.rl.validator import validate_off_loop
from agentlightning.storage.models import RLEnvironment, RLExperiment, RLMetricPoint
from agentlightning.storage.types import utcnow
from agentlightning.validation import DbId, JsonObject, Text

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "EnvironmentCreate",
    "EvaluationParams",
    "ExperimentCreate",
    "ExperimentService",
    "TRAINING_TOPIC",
    "experiment_dict",
    "latest_resumable",
    "parse_status",
    "transition",
]

TRAINING_TOPIC = "training"
TERMINAL = frozenset({"completed", "stopped", "failed"})
ACTIVE = frozenset({"created", "queued", "running"})
#: Allowed predecessors of each status.
_FROM: dict[str, tuple[str, ...]] = {
    "queued": ("created", "running"),
    "running": ("queued",),
    "completed": ("running",),
    "stopped": ("created", "queued", "running"),
    "failed": ("created", "queued", "running"),
}


class ExperimentCreate(ExperimentConfig):
    """Body of ``POST /api/v2/rl/experiments``: a unique name plus the experiment config."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=255, pattern=r"^[\w.\- ]+$")
    agent_id: DbId | None = Field(None, description="the agent this experiment improves, if any")

    def experiment_config(self) -> ExperimentConfig:
        """The config part (what is stored in the ``config`` column)."""
        return ExperimentConfig.model_validate(self.model_dump(exclude={"name", "agent_id", "custom_env"}))


class EvaluationParams(BaseModel):
    """Body of ``POST /api/v2/rl/experiments/{id}/evaluate``."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Text = Field("latest", max_length=64, description="'latest', 'final' or a checkpoint's timesteps")
    n_episodes: int = Field(10, ge=1, le=200)
    deterministic: bool = True
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class EnvironmentCreate(BaseModel):
    """Body of ``POST /api/v2/rl/environments``: a Gymnasium id bound to an allow-listed class."""

    model_config = ConfigDict(extra="forbid")

    env_id: Text = Field(..., min_length=1, max_length=255)
    entry_point: Text = Field(..., min_length=3, max_length=500, description="'package.module:ClassName'")
    kwargs: JsonObject = Field(default_factory=dict)
    max_episode_steps: int | None = Field(None, ge=1, le=10_000_000)
    description: Text | None = Field(None, max_length=2000)


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
    allowed = tuple(only_from) if only_from is not None else _FROM[status]
    stmt = (
        update(RLExperiment)
        .where(RLExperiment.id == experiment_id, RLExperiment.status.in_(allowed))
        .values(status=status, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return result.rowcount == 1


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
        async with self.ctx.db.session() as session:
            session.add(exp)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                if await session.scalar(select(RLExperiment.id).where(RLExperiment.name == request.name)):
                    raise Conflict(
                        "EXPERIMENT_NAME_TAKEN",
                        f"An experiment named '{request.name}' already exists",
                        details={"name": request.name},
                    ) from exc
                raise ValidationFailed(
                    "VALIDATION_ERROR",
                    f"Invalid reference: agent {request.agent_id} does not exist",
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
        """Evaluate a checkpoint of a running or finished experiment (in a worker process)."""
        from agentlightning.rl.classic.evaluation import EvaluationRequest

        path = await self.checkpoint_path(experiment_id, params.checkpoint)
        async with self.ctx.db.session() as session:
            exp = await self._get(session, experiment_id)
            config, backend = dict(exp.config), exp.backend
        manager = self.ctx.services.get("rl")
        if manager is None:
            raise ServiceUnavailable("SERVICE_UNAVAILABLE", "The RL manager is not running in this process")
        request = EvaluationRequest(path, config, params.n_episodes, params.deterministic, params.seed)
        try:
            result = await manager.evaluate(request, backend)
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
    if value is not None and value not in ACTIVE | TERMINAL:
        raise ValidationFailed(
            "VALIDATION_ERROR",
            f"unknown status {value!r}",
            details={"errors": [{"field": "status", "message": f"one of {sorted(ACTIVE | TERMINAL)}"}]},
        )
    return value
