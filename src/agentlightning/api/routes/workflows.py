"""Workflow endpoints (the spec's "Workflow Management Endpoints") plus versions (PUT), runs and
cancellation.  ``{workflow_ref}`` is the numeric id or the unique name.

Developers and admins (``workflow:write``) create, update and delete workflows and see every run;
users (``workflow:read``) see shared workflows, run them, and see only their own runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import IdPath, PageQuery, PageSizeQuery, RefPath
from agentlightning.auth.service import Principal
from agentlightning.validation import DB_INT_MAX
from agentlightning.workflows.schemas import (
    ExecuteRequest,
    WorkflowDeleted,
    WorkflowPage,
    WorkflowPublic,
    WorkflowRunPage,
    WorkflowRunPublic,
)
from agentlightning.workflows.service import WorkflowService
from agentlightning.workflows.spec import WorkflowCreate, WorkflowUpdate

router = APIRouter(tags=["workflows"], responses=ERROR_RESPONSES)
PREFIX = "/api/v2/workflows"


@router.get(PREFIX, response_model=Envelope[WorkflowPage])
async def list_workflows(
    ctx: Ctx,
    principal: Principal = Depends(require("workflow:read")),
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """The workflows the caller may see, newest first."""
    items, total = await WorkflowService(ctx).list(principal, page=page, page_size=page_size)
    return ok({"items": items, "total": total, "page": page, "page_size": page_size}, f"{total} workflow(s)")


@router.post(PREFIX, status_code=201, response_model=Envelope[WorkflowPublic])
async def create_workflow(
    body: WorkflowCreate, ctx: Ctx, principal: Principal = Depends(require("workflow:write"))
) -> dict[str, Any]:
    """Create a workflow: a named DAG of agent, tool, condition and sub-workflow steps (JSON, or
    YAML text in ``yaml``)."""
    workflow = await WorkflowService(ctx).create(body, principal)
    return ok(workflow, f"Workflow '{workflow['name']}' created")


@router.get(PREFIX + "/{workflow_ref}", response_model=Envelope[WorkflowPublic])
async def get_workflow(
    workflow_ref: RefPath, ctx: Ctx, principal: Principal = Depends(require("workflow:read"))
) -> dict[str, Any]:
    """One workflow with its current definition."""
    return ok(await WorkflowService(ctx).get(workflow_ref, principal))


@router.put(PREFIX + "/{workflow_ref}", response_model=Envelope[WorkflowPublic])
async def update_workflow(
    workflow_ref: RefPath, body: WorkflowUpdate, ctx: Ctx, principal: Principal = Depends(require("workflow:write"))
) -> dict[str, Any]:
    """Store a new version of the definition; runs already started keep their version."""
    workflow = await WorkflowService(ctx).update(workflow_ref, body, principal)
    return ok(workflow, f"Workflow '{workflow['name']}' is at version {workflow['version']}")


@router.delete(PREFIX + "/{workflow_ref}", response_model=Envelope[WorkflowDeleted])
async def delete_workflow(
    workflow_ref: RefPath, ctx: Ctx, principal: Principal = Depends(require("workflow:write"))
) -> dict[str, Any]:
    """Delete a workflow, its versions and runs; unfinished runs and their tasks are cancelled first."""
    return ok(await WorkflowService(ctx).delete(workflow_ref, principal), "Workflow deleted")


@router.post(PREFIX + "/{workflow_ref}/execute", status_code=202, response_model=Envelope[WorkflowRunPublic])
async def execute_workflow(
    workflow_ref: RefPath,
    ctx: Ctx,
    body: ExecuteRequest | None = None,
    principal: Principal = Depends(require("workflow:read")),
) -> dict[str, Any]:
    """Start a run of the current version; answers at once with the run id (the engine runs it)."""
    run = await WorkflowService(ctx).execute(workflow_ref, (body or ExecuteRequest()).input, principal)
    return ok(run, f"Workflow run {run['id']} started")


@router.get(PREFIX + "/{workflow_ref}/status", response_model=Envelope[WorkflowRunPublic])
async def workflow_status(
    workflow_ref: RefPath,
    ctx: Ctx,
    principal: Principal = Depends(require("workflow:read")),
    run_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX, description="A run of this workflow")] = None,
) -> dict[str, Any]:
    """The latest run (or ``run_id``) with every step's state, attempts, timing and output."""
    run = await WorkflowService(ctx).status(workflow_ref, principal, run_id)
    return ok(run, f"Workflow run {run['id']} is {run['status']}")


@router.get(PREFIX + "/{workflow_ref}/runs", response_model=Envelope[WorkflowRunPage])
async def list_runs(
    workflow_ref: RefPath,
    ctx: Ctx,
    principal: Principal = Depends(require("workflow:read")),
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """The workflow's runs the caller may see, newest first."""
    items, total = await WorkflowService(ctx).runs(workflow_ref, principal, page=page, page_size=page_size)
    return ok({"items": items, "total": total, "page": page, "page_size": page_size}, f"{total} run(s)")


@router.get("/api/v2/workflow-runs/{run_id}", response_model=Envelope[WorkflowRunPublic])
async def get_run(run_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("workflow:read"))) -> dict[str, Any]:
    """One run with every step's state."""
    run = await WorkflowService(ctx).get_run(run_id, principal)
    return ok(run, f"Workflow run {run['id']} is {run['status']}")


@router.post("/api/v2/workflow-runs/{run_id}/cancel", response_model=Envelope[WorkflowRunPublic])
async def cancel_run(
    run_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("workflow:read"))
) -> dict[str, Any]:
    """Cancel an unfinished run: its pending and running steps, their tasks and sub-workflow runs."""
    return ok(await WorkflowService(ctx).cancel_run(run_id, principal), "Workflow run cancelled")
