"""Auto-RL endpoints: trigger, status, rollback and per-agent policies (under ``/api/v2/rl``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import IdPath
from agentlightning.auth.service import Principal
from agentlightning.rl.auto.history import HistoryService
from agentlightning.rl.auto.policy import PolicyService
from agentlightning.rl.auto.schemas import (
    AutoRLStatus,
    PolicyPublic,
    PolicyUpdate,
    PromotionPublic,
    RollbackRequest,
    TriggerPublic,
    TriggerRequest,
)
from agentlightning.rl.auto.status import AutoRLStatusService
from agentlightning.rl.auto.triggers import TriggerService

router = APIRouter(prefix="/api/v2/rl", tags=["auto-rl"], responses=ERROR_RESPONSES)


@router.post("/auto-trigger", status_code=202, response_model=Envelope[TriggerPublic])
async def auto_trigger(
    body: TriggerRequest, ctx: Ctx, principal: Principal = Depends(require("rl:execute"))
) -> dict[str, Any]:
    """Start an Auto-RL optimisation of an agent now (its policy's algorithm unless one is given)."""
    data = await TriggerService(ctx).trigger(
        body.agent_id, reason="manual", actor=principal.username, algorithm=body.algorithm
    )
    return ok(data, "Auto-RL optimisation started")


@router.get("/auto-status", response_model=Envelope[AutoRLStatus])
async def auto_status(ctx: Ctx, principal: Principal = Depends(require("rl:read"))) -> dict[str, Any]:
    """Per agent: rolling success, triggers, optimisations, promotions and gain; Auto-RL's own success rate."""
    return ok(await AutoRLStatusService(ctx).status())


@router.post("/auto-rollback", response_model=Envelope[PromotionPublic])
async def auto_rollback(
    body: RollbackRequest, ctx: Ctx, principal: Principal = Depends(require("rl:execute"))
) -> dict[str, Any]:
    """Restore an agent's resources from before its latest Auto-RL promotion."""
    data = await HistoryService(ctx).rollback(body.agent_id, actor=principal.username, comment=body.comment)
    return ok(data, "Promotion rolled back")


@router.get("/auto-policies/{agent_id}", response_model=Envelope[PolicyPublic])
async def get_policy(agent_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("rl:read"))) -> dict[str, Any]:
    """An agent's effective Auto-RL policy (system defaults with its own overrides)."""
    return ok(await PolicyService(ctx).read(agent_id))


@router.put("/auto-policies/{agent_id}", response_model=Envelope[PolicyPublic])
async def set_policy(
    agent_id: IdPath, body: PolicyUpdate, ctx: Ctx, principal: Principal = Depends(require("rl:execute"))
) -> dict[str, Any]:
    """Change an agent's Auto-RL policy (partial; null returns a field to the system default)."""
    policy = await PolicyService(ctx).update(agent_id, body, actor=principal.username)
    return ok(policy, "Policy updated")
