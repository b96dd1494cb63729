"""Task endpoints: read, list, cancel and trace.  Users without ``agent:write`` see only their own tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.agents.schemas import TaskPage, TaskPublic, TaskTrace
from agentlightning.agents.tracing import spans_for_task
from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import IdPath, OptText, PageQuery, PageSizeQuery
from agentlightning.auth.service import Principal
from agentlightning.errors import NotFound
from agentlightning.rollouts.schemas import FeedbackIn, RewardPublic
from agentlightning.rollouts.service import RolloutService
from agentlightning.vocabulary import TaskPriority, TaskStatus

router = APIRouter(prefix="/api/v2/tasks", tags=["tasks"], responses=ERROR_RESPONSES)


class TaskEnvelope(Envelope[TaskPublic]):
    """A task, with its id and status also at the top level (as the spec's clients read them)."""

    task_id: int
    status: TaskStatus


def _owner_filter(principal: Principal) -> str | None:
    return None if principal.can("agent:write") else principal.username


async def _visible_task(scheduler: TaskScheduler, task_id: int, principal: Principal) -> dict[str, Any]:
    task = await scheduler.get(task_id)
    owner = _owner_filter(principal)
    if owner is not None and task.get("created_by") not in (None, owner):
        raise NotFound("TASK_NOT_FOUND", f"Task '{task_id}' not found", details={"task_id": task_id})
    return task


@router.get("", response_model=Envelope[TaskPage])
async def list_tasks(
    ctx: Ctx,
    principal: Principal = Depends(require("agent:read")),
    status: TaskStatus | None = Query(default=None),
    agent: Annotated[OptText, Query(max_length=255, description="Agent id or name")] = None,
    priority: TaskPriority | None = Query(default=None),
    session_id: Annotated[OptText, Query(max_length=128)] = None,
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """Tasks, newest first, filtered by status, agent, priority or session."""
    items, total = await TaskScheduler(ctx).list(
        status=status,
        agent=agent,
        priority=priority,
        session_id=session_id,
        created_by=_owner_filter(principal),
        page=page,
        page_size=page_size,
    )
    return ok({"items": items, "total": total, "page": page, "page_size": page_size}, f"{total} task(s)")


@router.get("/{task_id}", response_model=TaskEnvelope)
async def get_task(task_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """One task: status, result, timing, attempts and error."""
    task = await _visible_task(TaskScheduler(ctx), task_id, principal)
    return ok(task, f"Task is {task['status']}", task_id=task["id"], status=task["status"])


@router.post("/{task_id}/cancel", response_model=Envelope[TaskPublic])
async def cancel_task(
    task_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("agent:assign"))
) -> dict[str, Any]:
    """Cancel a pending or running task."""
    scheduler = TaskScheduler(ctx)
    await _visible_task(scheduler, task_id, principal)
    return ok(await scheduler.cancel(task_id), "Task cancelled")


@router.get("/{task_id}/trace", response_model=Envelope[TaskTrace])
async def task_trace(
    task_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("agent:read"))
) -> dict[str, Any]:
    """The trace spans of a task's runs (agent run, LLM calls, tool calls)."""
    await _visible_task(TaskScheduler(ctx), task_id, principal)
    spans = await spans_for_task(ctx.db, task_id)
    return ok({"task_id": task_id, "spans": spans}, f"{len(spans)} span(s)")


@router.post("/{task_id}/feedback", status_code=201, response_model=Envelope[RewardPublic])
async def task_feedback(
    task_id: IdPath, body: FeedbackIn, ctx: Ctx, principal: Principal = Depends(require("agent:read"))
) -> dict[str, Any]:
    """Score a finished task's answer (0 = bad .. 1 = good, with a comment): a ``feedback`` reward
    of the task's rollout.  Only a user who may read the task can."""
    return ok(await RolloutService(ctx).feedback(principal, task_id, body), "Feedback stored")
