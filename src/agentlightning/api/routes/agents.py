"""Agent management endpoints (the spec's "Agent Management Endpoints") plus create, templates,
tools and per-agent status.  ``{agent_ref}`` is the numeric id or the unique name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.agents.schemas import (
    AgentCreate,
    AgentDeleted,
    AgentDetail,
    AgentOverview,
    AgentPage,
    AgentPublic,
    AgentRestarted,
    AgentRuntimeStatus,
    AgentTemplatePublic,
    AgentUpdate,
    AssignRequest,
    ToolPublic,
)
from agentlightning.agents.service import AgentService
from agentlightning.agents.templates import TEMPLATES
from agentlightning.agents.tools.registry import default_registry
from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import OptText, PageQuery, PageSizeQuery, RefPath
from agentlightning.api.routes.tasks import TaskEnvelope
from agentlightning.auth.service import Principal
from agentlightning.rollouts.schemas import AgentResources
from agentlightning.vocabulary import AgentStatus

router = APIRouter(prefix="/api/v2/agents", tags=["agents"], responses=ERROR_RESPONSES)


@router.get("", response_model=Envelope[AgentPage])
async def list_agents(
    ctx: Ctx,
    _: Principal = Depends(require("agent:read")),
    type: Annotated[OptText, Query(max_length=100, description="Only agents of this type")] = None,
    status: AgentStatus | None = Query(default=None),
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """List agents, filtered by type and status, a page at a time."""
    items, total = await AgentService(ctx).list(type=type, status=status, page=page, page_size=page_size)
    return ok({"items": items, "total": total, "page": page, "page_size": page_size}, f"{total} agent(s)")


@router.get("/status", response_model=Envelope[AgentOverview])
async def status_overview(ctx: Ctx, _: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """Every agent's state with queue and worker totals."""
    return ok(await AgentService(ctx).overview(), "Agent status overview")


@router.get("/templates", response_model=Envelope[list[AgentTemplatePublic]])
async def list_templates(_: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """The catalogue of agent templates to copy (``POST /api/v2/agents`` with ``template``)."""
    return ok([t.to_dict() for t in TEMPLATES.values()], f"{len(TEMPLATES)} template(s)")


@router.get("/tools", response_model=Envelope[list[ToolPublic]])
async def list_tools(ctx: Ctx, _: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """The tools agents may be given, with their JSON schemas, permissions and timeouts."""
    return ok(default_registry().describe(ctx.settings))


@router.post("", status_code=201, response_model=Envelope[AgentPublic])
async def create_agent(body: AgentCreate, ctx: Ctx, _: Principal = Depends(require("agent:write"))) -> dict[str, Any]:
    """Register a new agent (optionally from a template)."""
    agent = await AgentService(ctx).create(body)
    return ok(agent, f"Agent '{agent['name']}' created")


@router.post(
    "/assign",
    status_code=202,
    response_model=TaskEnvelope,
    responses={200: {"model": TaskEnvelope, "description": "The task first assigned with this Idempotency-Key"}},
)
async def assign_task(
    body: AssignRequest,
    ctx: Ctx,
    response: Response,
    principal: Principal = Depends(require("agent:assign")),
    idempotency_key: Annotated[OptText, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    """Queue a task for an agent (by id/name) or for the best agent of a type."""
    task, created = await TaskScheduler(ctx).assign(
        task=body.task,
        agent_id=body.agent_id,
        agent_type=body.agent_type,
        priority=body.priority,
        context=body.context,
        session_id=body.session_id,
        idempotency_key=idempotency_key,
        created_by=principal.username,
    )
    response.status_code = 202 if created else 200
    message = "Task assigned" if created else "Task already assigned for this Idempotency-Key"
    return ok(task, message, task_id=task["id"], status=task["status"])


@router.get("/{agent_ref}", response_model=Envelope[AgentDetail])
async def get_agent(agent_ref: RefPath, ctx: Ctx, _: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """One agent with its live status."""
    return ok(await AgentService(ctx).detail(agent_ref))


@router.get("/{agent_ref}/resources", response_model=Envelope[AgentResources])
async def agent_resources(
    agent_ref: RefPath, ctx: Ctx, _: Principal = Depends(require("agent:read"))
) -> dict[str, Any]:
    """The agent's currently promoted resources (prompt, model, temperature, tools, adapter,
    variant) and their version: what the runtime, the SDK and the gateway use."""
    return ok(await AgentService(ctx).resources(agent_ref))


@router.get("/{agent_ref}/status", response_model=Envelope[AgentRuntimeStatus])
async def agent_status(agent_ref: RefPath, ctx: Ctx, _: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """One agent's live status (cached for up to 5 minutes)."""
    return ok(await AgentService(ctx).status(agent_ref))


@router.put("/{agent_ref}", response_model=Envelope[AgentPublic])
async def update_agent(
    agent_ref: RefPath, body: AgentUpdate, ctx: Ctx, _: Principal = Depends(require("agent:write"))
) -> dict[str, Any]:
    """Change an agent's configuration; its config version increments when behaviour changes."""
    return ok(await AgentService(ctx).update(agent_ref, body), "Agent updated")


@router.delete("/{agent_ref}", response_model=Envelope[AgentDeleted])
async def delete_agent(agent_ref: RefPath, ctx: Ctx, _: Principal = Depends(require("agent:write"))) -> dict[str, Any]:
    """Delete an agent; its unfinished tasks are cancelled."""
    return ok(await AgentService(ctx).delete(agent_ref), "Agent deleted")


@router.post("/{agent_ref}/restart", response_model=Envelope[AgentRestarted])
async def restart_agent(agent_ref: RefPath, ctx: Ctx, _: Principal = Depends(require("agent:write"))) -> dict[str, Any]:
    """Return an agent to ``active`` with fresh state."""
    return ok(await AgentService(ctx).restart(agent_ref), "Agent restarted")
