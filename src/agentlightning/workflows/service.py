"""The workflow service: the API side of ``workflows``, ``workflow_versions``, ``workflow_runs`` and
``workflow_steps`` (this package owns them; the engine in :mod:`agentlightning.workflows.engine`
advances runs).

Visibility: holders of ``workflow:write`` (developers, admins) see and change every workflow and
every run.  Others (``workflow:read``) see shared workflows and their own, may run those, and see
only their own runs.  A run's agent steps are tasks created in the name of the run's owner, so the
task endpoints apply the same rule to them.
"""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, update

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.agents.tools.registry import default_registry
from agentlightning.errors import AppError, Conflict, NotFound, ValidationFailed
from agentlightning.rollouts.service import RolloutService
from agentlightning.storage.events import Event, record_event
from agentlightning.storage.models import Agent, Workflow, WorkflowRun, WorkflowStep, WorkflowVersion
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.validation import parse_db_id
from agentlightning.vocabulary import WORKFLOW_RUN_ACTIVE, WORKFLOW_STEP_TERMINAL
from agentlightning.workflows.spec import (
    AgentStepDef,
    Problem,
    SubWorkflowStepDef,
    ToolStepDef,
    WorkflowCreate,
    WorkflowDefinition,
    WorkflowUpdate,
    check_definition,
    definition_dict,
)
from agentlightning.workflows.templates import jsonable_value

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from agentlightning.auth.service import Principal
    from agentlightning.core.context import AppContext

log = logging.getLogger(__name__)

#: The event topic of workflow events (stored in the outbox like task events).
TOPIC = "workflows"
#: Sub-workflows nest at most this deep (a workflow that runs itself stops here).
MAX_DEPTH = 5
_UNFINISHED_STEP = ("pending", "running")


def can_manage(actor: Principal | None) -> bool:
    """Whether ``actor`` sees and changes every workflow and run (``workflow:write``)."""
    return actor is None or actor.can("workflow:write")


def _duration_ms(start: Any, end: Any) -> int | None:
    if start is None or end is None:
        return None
    return int((as_utc(end) - as_utc(start)).total_seconds() * 1000)


def workflow_dict(row: Workflow, version: WorkflowVersion | None) -> dict[str, Any]:
    """The API representation of a workflow with its current definition."""
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "visibility": row.visibility,
        "version": row.version,
        "definition": version.definition if version is not None else {},
        "created_by": row.created_by,
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
    }


def _step_fields(row: WorkflowStep) -> dict[str, Any]:
    return {
        "status": row.status,
        "attempts": row.attempts,
        "task_id": row.task_id,
        "child_run_id": row.child_run_id,
        "output": row.output,
        "error": row.error,
        "started_at": as_utc(row.started_at),
        "completed_at": as_utc(row.completed_at),
        "duration_ms": _duration_ms(row.started_at, row.completed_at),
    }


def run_dict(
    run: WorkflowRun, workflow_name: str | None, steps: builtins.list[WorkflowStep] | None = None
) -> dict[str, Any]:
    """The API representation of a run (with its steps when given, in definition order)."""
    data: dict[str, Any] = {
        "id": run.id,
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "workflow_name": workflow_name,
        "version": run.version,
        "status": run.status,
        "input": run.input or {},
        "output": run.output,
        "error": run.error,
        "owner": run.owner,
        "parent_run_id": run.parent_run_id,
        "rollout_id": run.rollout_id,
        "created_at": as_utc(run.created_at),
        "started_at": as_utc(run.started_at),
        "completed_at": as_utc(run.completed_at),
        "duration_ms": _duration_ms(run.started_at, run.completed_at),
        "steps": [],
    }
    if steps:
        by_step: dict[str, dict[str, Any]] = {}
        items: dict[str, builtins.list[dict[str, Any]]] = {}
        for row in sorted(steps, key=lambda r: (r.id, r.item)):
            if row.item < 0:
                by_step[row.step_id] = {"step_id": row.step_id, "kind": row.kind, **_step_fields(row), "items": []}
            else:
                items.setdefault(row.step_id, []).append({"item": row.item, **_step_fields(row)})
        for step_id, entries in items.items():
            if step_id in by_step:
                by_step[step_id]["items"] = sorted(entries, key=lambda e: e["item"])
        data["steps"] = list(by_step.values())
    return data


def run_event_data(run: WorkflowRun, workflow_name: str | None, **extra: Any) -> dict[str, Any]:
    """The payload of ``workflow_*`` and ``step_*`` events."""
    return {
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "workflow_name": workflow_name,
        "version": run.version,
        "status": run.status,
        "parent_run_id": run.parent_run_id,
        **extra,
    }


async def record_run_event(
    session: AsyncSession, run: WorkflowRun, workflow_name: str | None, event: str, **extra: Any
) -> Event:
    """Store a workflow event in ``session``'s transaction (announce it after the commit)."""
    return await record_event(session, TOPIC, event, run_event_data(run, workflow_name, **extra), owner=run.owner)


class WorkflowService:
    """Create, version, list, read and delete workflows; start, read and cancel runs."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # --- definitions -----------------------------------------------------------------------
    async def _validate(self, definition: WorkflowDefinition, *, self_name: str | None = None) -> None:
        """Structural checks plus what needs the database: agents, tools and sub-workflows exist."""
        problems = check_definition(definition)
        registry = default_registry()
        agent_refs: set[str] = set()
        async with self.ctx.db.session() as s:
            for i, step in enumerate(definition.steps):
                base = f"body.steps.{i}"
                if isinstance(step, AgentStepDef):
                    if step.agent is not None:
                        ref = step.agent
                        number = parse_db_id(ref)
                        cond = Agent.id == number if number is not None else Agent.name == str(ref)
                        if str(ref) not in agent_refs and await s.scalar(select(Agent.id).where(cond)) is None:
                            problems.append(Problem(f"{base}.agent", f"unknown agent '{ref}'", "unknown_agent"))
                        agent_refs.add(str(ref))
                    elif await s.scalar(select(Agent.id).where(Agent.type == step.agent_type).limit(1)) is None:
                        problems.append(
                            Problem(f"{base}.agent_type", f"no agent of type '{step.agent_type}'", "unknown_agent")
                        )
                elif isinstance(step, ToolStepDef):
                    if registry.get(step.tool) is None:
                        problems.append(
                            Problem(
                                f"{base}.tool",
                                f"unknown tool '{step.tool}'; available: {', '.join(registry.names())}",
                                "unknown_tool",
                            )
                        )
                    elif not _has_template(step.args):
                        for message in registry.validate(step.tool, step.args):
                            problems.append(Problem(f"{base}.args", message, "tool_arguments"))
                elif isinstance(step, SubWorkflowStepDef):
                    ref = step.workflow
                    if self_name is not None and str(ref) == self_name:
                        problems.append(Problem(f"{base}.workflow", "a workflow cannot run itself", "cycle"))
                    elif await s.scalar(_where_ref(select(Workflow.id), ref)) is None:
                        problems.append(Problem(f"{base}.workflow", f"unknown workflow '{ref}'", "unknown_workflow"))
        if problems:
            summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
            raise ValidationFailed(
                "VALIDATION_ERROR",
                f"Invalid workflow definition: {summary}",
                details={"errors": [p.to_dict() for p in problems]},
            )

    async def create(self, body: WorkflowCreate, actor: Principal) -> dict[str, Any]:
        """Store a new workflow (version 1)."""
        await self._validate(body, self_name=body.name)
        now = utcnow()
        async with self.ctx.db.session() as s:
            if await s.scalar(select(Workflow.id).where(Workflow.name == body.name)) is not None:
                raise Conflict(
                    "WORKFLOW_NAME_TAKEN", f"A workflow named '{body.name}' already exists", details={"name": body.name}
                )
            row = Workflow(
                name=body.name,
                description=body.description,
                visibility=body.visibility,
                version=1,
                created_by=actor.username,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            await s.flush()
            version = WorkflowVersion(
                workflow_id=row.id,
                version=1,
                definition=definition_dict(body),
                created_by=actor.username,
                created_at=now,
            )
            s.add(version)
            await s.commit()
            return workflow_dict(row, version)

    async def update(self, ref: int | str, body: WorkflowUpdate, actor: Principal) -> dict[str, Any]:
        """Store a new version of the definition; runs already started keep theirs."""
        row, _ = await self._visible(ref, actor)
        await self._validate(body, self_name=row.name)
        now = utcnow()
        async with self.ctx.db.session() as s:
            current = await s.get(Workflow, row.id, with_for_update=self.ctx.db.dialect == "postgresql")
            if current is None:
                raise _not_found(ref)
            current.version += 1
            current.updated_at = now
            if body.description is not None:
                current.description = body.description
            if body.visibility is not None:
                current.visibility = body.visibility
            version = WorkflowVersion(
                workflow_id=current.id,
                version=current.version,
                definition=definition_dict(body),
                created_by=actor.username,
                created_at=now,
            )
            s.add(version)
            await s.commit()
            return workflow_dict(current, version)

    async def _visible(self, ref: int | str, actor: Principal | None) -> tuple[Workflow, WorkflowVersion]:
        """The workflow and its current version, or ``WORKFLOW_NOT_FOUND`` when absent or hidden."""
        async with self.ctx.db.session() as s:
            found = (
                await s.execute(
                    _where_ref(select(Workflow, WorkflowVersion), ref).join(
                        WorkflowVersion,
                        (WorkflowVersion.workflow_id == Workflow.id) & (WorkflowVersion.version == Workflow.version),
                    )
                )
            ).first()
        if found is None:
            raise _not_found(ref)
        row, version = found
        if not can_manage(actor) and row.visibility != "shared" and row.created_by != actor.username:  # type: ignore[union-attr]
            raise _not_found(ref)
        return row, version

    async def get(self, ref: int | str, actor: Principal) -> dict[str, Any]:
        """One workflow with its current definition."""
        return workflow_dict(*await self._visible(ref, actor))

    async def list(
        self, actor: Principal, *, page: int = 1, page_size: int = 50
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """A page of the workflows ``actor`` may see, newest first."""
        stmt = select(Workflow, WorkflowVersion).join(
            WorkflowVersion,
            (WorkflowVersion.workflow_id == Workflow.id) & (WorkflowVersion.version == Workflow.version),
        )
        if not can_manage(actor):
            stmt = stmt.where(or_(Workflow.visibility == "shared", Workflow.created_by == actor.username))
        async with self.ctx.db.session() as s:
            total = int(
                await s.scalar(select(func.count()).select_from(stmt.with_only_columns(Workflow.id).subquery())) or 0
            )
            rows = (
                await s.execute(stmt.order_by(Workflow.id.desc()).offset((page - 1) * page_size).limit(page_size))
            ).all()
        return [workflow_dict(w, v) for w, v in rows], total

    async def delete(self, ref: int | str, actor: Principal) -> dict[str, Any]:
        """Cancel the workflow's unfinished runs (and their tasks), then delete it and its history."""
        row, _ = await self._visible(ref, actor)
        async with self.ctx.db.session() as s:
            active = [
                r[0]
                for r in await s.execute(
                    select(WorkflowRun.id).where(
                        WorkflowRun.workflow_id == row.id, WorkflowRun.status.in_(WORKFLOW_RUN_ACTIVE)
                    )
                )
            ]
        cancelled = 0
        for run_id in active:
            if await self._cancel(run_id, "workflow deleted"):
                cancelled += 1
        async with self.ctx.db.session() as s:
            await s.execute(delete(Workflow).where(Workflow.id == row.id))
            await s.commit()
        return {"id": row.id, "name": row.name, "deleted": True, "cancelled_runs": cancelled}

    # --- runs ------------------------------------------------------------------------------
    async def execute(self, ref: int | str, run_input: dict[str, Any], actor: Principal) -> dict[str, Any]:
        """Start a run of the current version; returns it at once (the engine advances it)."""
        row, version = await self._visible(ref, actor)
        run, event = await self.start_run(row, version, run_input, owner=actor.username)
        await self.ctx.events.announce([event])
        return run_dict(run, row.name)

    async def start_run(
        self,
        workflow: Workflow,
        version: WorkflowVersion,
        run_input: dict[str, Any],
        *,
        owner: str | None,
        parent: WorkflowRun | None = None,
        parent_step_id: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[WorkflowRun, Event]:
        """Insert a ``pending`` run, its step rows and its ``workflow_started`` event (announce it after)."""
        now = utcnow()
        async with self.ctx.db.session() as s:
            run = WorkflowRun(
                workflow_id=workflow.id,
                version_id=version.id,
                version=version.version,
                status="pending",
                input=run_input,
                owner=owner,
                parent_run_id=parent.id if parent is not None else None,
                parent_step_id=parent_step_id,
                depth=(parent.depth + 1) if parent is not None else 0,
                idempotency_key=idempotency_key,
                wake_at=now,
                created_at=now,
            )
            s.add(run)
            await s.flush()
            steps = version.definition.get("steps") or []
            s.add_all(
                WorkflowStep(
                    run_id=run.id, step_id=step["id"], item=-1, kind=step["kind"], status="pending", attempts=0
                )
                for step in steps
            )
            event = await record_run_event(s, run, workflow.name, "workflow_started")
            await s.commit()
        return run, event

    async def _visible_run(self, run_id: int, actor: Principal | None) -> tuple[WorkflowRun, str | None]:
        async with self.ctx.db.session() as s:
            found = (
                await s.execute(
                    select(WorkflowRun, Workflow.name)
                    .join(Workflow, Workflow.id == WorkflowRun.workflow_id)
                    .where(WorkflowRun.id == run_id)
                )
            ).first()
        if found is None or not (can_manage(actor) or found[0].owner == actor.username):  # type: ignore[union-attr]
            raise NotFound("WORKFLOW_RUN_NOT_FOUND", f"Workflow run '{run_id}' not found", details={"run_id": run_id})
        return found[0], found[1]

    async def _with_steps(self, run: WorkflowRun, name: str | None) -> dict[str, Any]:
        async with self.ctx.db.session() as s:
            steps = (await s.execute(select(WorkflowStep).where(WorkflowStep.run_id == run.id))).scalars().all()
        return run_dict(run, name, list(steps))

    async def get_run(self, run_id: int, actor: Principal) -> dict[str, Any]:
        """One run with every step's state, attempts, timing and output."""
        return await self._with_steps(*await self._visible_run(run_id, actor))

    async def status(self, ref: int | str, actor: Principal, run_id: int | None = None) -> dict[str, Any]:
        """The run ``run_id`` of the workflow, or its latest run that ``actor`` may see."""
        row, _ = await self._visible(ref, actor)
        if run_id is not None:
            run, name = await self._visible_run(run_id, actor)
            if run.workflow_id != row.id:
                raise NotFound(
                    "WORKFLOW_RUN_NOT_FOUND", f"Workflow run '{run_id}' not found", details={"run_id": run_id}
                )
            return await self._with_steps(run, name)
        stmt = select(WorkflowRun).where(WorkflowRun.workflow_id == row.id, WorkflowRun.parent_run_id.is_(None))
        if not can_manage(actor):
            stmt = stmt.where(WorkflowRun.owner == actor.username)
        async with self.ctx.db.session() as s:
            latest = await s.scalar(stmt.order_by(WorkflowRun.id.desc()).limit(1))
        if latest is None:
            raise NotFound(
                "WORKFLOW_RUN_NOT_FOUND", f"Workflow '{row.name}' has no runs yet", details={"workflow_id": row.id}
            )
        return await self._with_steps(latest, row.name)

    async def runs(
        self, ref: int | str, actor: Principal, *, page: int = 1, page_size: int = 50
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """A page of the workflow's runs ``actor`` may see, newest first (without steps)."""
        row, _ = await self._visible(ref, actor)
        stmt = select(WorkflowRun).where(WorkflowRun.workflow_id == row.id)
        if not can_manage(actor):
            stmt = stmt.where(WorkflowRun.owner == actor.username)
        async with self.ctx.db.session() as s:
            total = int(
                await s.scalar(select(func.count()).select_from(stmt.with_only_columns(WorkflowRun.id).subquery())) or 0
            )
            rows = (
                await s.execute(stmt.order_by(WorkflowRun.id.desc()).offset((page - 1) * page_size).limit(page_size))
            ).scalars()
            return [run_dict(r, row.name) for r in rows], total

    async def cancel_run(self, run_id: int, actor: Principal) -> dict[str, Any]:
        """Cancel an unfinished run: its pending and running steps, their tasks and sub-runs."""
        run, name = await self._visible_run(run_id, actor)
        if not await self._cancel(run.id, "cancelled by request"):
            raise Conflict(
                "WORKFLOW_RUN_ALREADY_FINISHED",
                f"Workflow run '{run_id}' is already {run.status}",
                details={"run_id": run_id, "status": run.status},
            )
        run, name = await self._visible_run(run_id, None)
        return await self._with_steps(run, name)

    async def _cancel(self, run_id: int, reason: str) -> bool:
        """Cancel a run and everything it started; False when it had already finished."""
        return await cancel_run_tree(self.ctx, run_id, reason)


async def cancel_run_tree(ctx: AppContext, run_id: int, reason: str, *, status: str = "cancelled") -> bool:
    """End an unfinished run as ``status`` (``cancelled`` or ``failed``) with ``reason``: its
    unfinished steps are cancelled, then their tasks and sub-workflow runs.  False when the run had
    already finished.  Used by the API (cancel, delete) and the engine (a failed step)."""
    now = utcnow()
    async with ctx.db.session() as s:
        run = (
            await s.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id, WorkflowRun.status.in_(WORKFLOW_RUN_ACTIVE))
                .values(status=status, error=reason[:4000], completed_at=now, lease_owner=None, wake_at=None)
                .returning(WorkflowRun)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        if run is None:
            await s.rollback()
            return False
        name = await s.scalar(select(Workflow.name).where(Workflow.id == run.workflow_id))
        stopped = (
            await s.execute(
                update(WorkflowStep)
                .where(WorkflowStep.run_id == run_id, WorkflowStep.status.in_(_UNFINISHED_STEP))
                .values(status="cancelled", completed_at=now, error=reason[:4000])
                .returning(WorkflowStep.task_id, WorkflowStep.child_run_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        event_name = "workflow_cancelled" if status == "cancelled" else "workflow_failed"
        event = await record_run_event(s, run, name, event_name, error=reason[:4000])
        if run.parent_run_id is not None:
            await s.execute(update(WorkflowRun).where(WorkflowRun.id == run.parent_run_id).values(wake_at=now))
        await finish_run_rollout(ctx, s, run.rollout_id, "failed", {"error": reason[:4000], "status": status})
        await s.commit()
    await ctx.events.announce([event])
    scheduler = TaskScheduler(ctx)
    for task_id, child_run_id in stopped:
        if task_id is not None:
            try:
                await scheduler.cancel(task_id)
            except AppError:  # already finished
                pass
        if child_run_id is not None:
            await cancel_run_tree(ctx, child_run_id, f"parent run {run_id} ended: {reason}"[:4000])
    return True


def run_rollout_id(run_id: int) -> str:
    """The id of a run's rollout (deterministic, so starting it again after a crash is a no-op)."""
    return f"wf-run-{run_id}"


async def start_run_rollout(ctx: AppContext, run: WorkflowRun, workflow_name: str | None) -> str | None:
    """Open the run's rollout (source ``workflow``, nested under its parent run's); None when the
    rollouts service refuses (the run goes on without one)."""
    rollout_id = run_rollout_id(run.id)
    try:
        await RolloutService(ctx).start(
            source="workflow",
            owner=run.owner,
            rollout_id=rollout_id,
            parent_id=run_rollout_id(run.parent_run_id) if run.parent_run_id is not None else None,
            input={"workflow": workflow_name, "version": run.version, "input": run.input or {}},
            metadata={"workflow_id": run.workflow_id, "workflow_run_id": run.id},
        )
    except Conflict:
        pass  # started before a crash: keep it
    except AppError as exc:
        log.warning("workflow run %s: no rollout (%s)", run.id, exc)
        return None
    return rollout_id


async def finish_run_rollout(
    ctx: AppContext, s: AsyncSession, rollout_id: str | None, status: str, output: Any
) -> None:
    """Close a run's rollout as ``completed`` or ``failed`` in the transaction ``s`` that ends the
    run, so a finished run never shows a running rollout (a missing rollout is logged)."""
    if rollout_id is None:
        return
    found = await RolloutService(ctx).finish_in(
        s, rollout_id, status="completed" if status == "completed" else "failed", output=jsonable_value(output)
    )
    if not found:
        log.warning("rollout %s not finished: it does not exist", rollout_id)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def _where_ref(stmt: Any, ref: int | str) -> Any:
    number = parse_db_id(ref)
    if number is not None:
        return stmt.where(Workflow.id == number)
    return stmt.where(Workflow.name == str(ref))


def _not_found(ref: int | str) -> NotFound:
    return NotFound("WORKFLOW_NOT_FOUND", f"Workflow '{ref}' not found", details={"workflow_id": str(ref)})


__all__ = [
    "MAX_DEPTH",
    "TOPIC",
    "WORKFLOW_STEP_TERMINAL",
    "WorkflowService",
    "cancel_run_tree",
    "can_manage",
    "record_run_event",
    "run_dict",
    "workflow_dict",
]
