"""What an agent's online bandit has learned: ``GET /api/v2/agents/{agent_ref}/bandit``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import RefPath
from agentlightning.auth.service import Principal
from agentlightning.rl.optimisers.bandit_service import BanditService
from agentlightning.rl.optimisers.schemas import BanditStatePublic

router = APIRouter(prefix="/api/v2/agents", tags=["agents"], responses=ERROR_RESPONSES)


@router.get("/{agent_ref}/bandit", response_model=Envelope[BanditStatePublic])
async def agent_bandit(agent_ref: RefPath, ctx: Ctx, _: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """The agent's online bandit (``config.bandit``): its declared variants and, per task type and
    variant, the posterior learned from rewards (pulls, successes, mean reward)."""
    return ok(await BanditService(ctx).state(agent_ref))
