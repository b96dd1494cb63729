"""Rollout endpoints: ingest from SDK/gateway clients, list and read rollouts, reward them.

A user sees and rewards only their own rollouts; developers and admins see all (``agent:write``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import PageQuery, PageSizeQuery
from agentlightning.auth.service import Principal
from agentlightning.rollouts.schemas import (
    REWARD_BOUND,
    ROLLOUT_ID_PATTERN,
    IngestResult,
    RewardIn,
    RewardPublic,
    RolloutBatchIn,
    RolloutDetailPublic,
    RolloutFilters,
    RolloutPage,
)
from agentlightning.rollouts.service import RolloutService
from agentlightning.validation import DB_INT_MAX
from agentlightning.vocabulary import RolloutSource, RolloutStatus

router = APIRouter(prefix="/api/v2/rollouts", tags=["rollouts"], responses=ERROR_RESPONSES)

RolloutIdPath = Annotated[str, Path(pattern=ROLLOUT_ID_PATTERN, description="Rollout id")]
RewardBound = Annotated[float | None, Query(ge=-REWARD_BOUND, le=REWARD_BOUND, allow_inf_nan=False)]


@router.post("", response_model=Envelope[IngestResult])
async def ingest_rollouts(
    body: RolloutBatchIn, ctx: Ctx, principal: Principal = Depends(require("agent:assign"))
) -> dict[str, Any]:
    """Store a batch of rollouts with their spans and rewards (SDK and gateway clients).

    A rollout with a new id (or none) is created and owned by the caller; a known id of the
    caller's is appended to.  A span already stored (same ``span_id``) is skipped, so retrying
    a batch is safe.
    """
    result = await RolloutService(ctx).ingest(body, actor=principal)
    return ok(result, f"{len(result['ids'])} rollout(s) stored")


@router.get("", response_model=Envelope[RolloutPage])
async def list_rollouts(
    ctx: Ctx,
    principal: Principal = Depends(require("agent:read")),
    agent_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    source: RolloutSource | None = Query(default=None),
    status: RolloutStatus | None = Query(default=None),
    task_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    parent_id: Annotated[str | None, Query(pattern=ROLLOUT_ID_PATTERN)] = None,
    since: datetime | None = Query(default=None, description="created at or after (ISO 8601)"),
    until: datetime | None = Query(default=None, description="created before (ISO 8601)"),
    min_reward: RewardBound = None,
    max_reward: RewardBound = None,
    page: PageQuery = 1,
    page_size: PageSizeQuery = 50,
) -> dict[str, Any]:
    """Rollouts, newest first, filtered by agent, source, status, task, parent, time and reward."""
    filters = RolloutFilters(
        agent_id=agent_id,
        source=source,
        status=status,
        task_id=task_id,
        parent_id=parent_id,
        since=since,
        until=until,
        min_reward=min_reward,
        max_reward=max_reward,
        page=page,
        page_size=page_size,
    )
    result = await RolloutService(ctx).list(principal, filters)
    return ok(result, f"{result['total']} rollout(s)")


@router.get("/{rollout_id}", response_model=Envelope[RolloutDetailPublic])
async def get_rollout(
    rollout_id: RolloutIdPath, ctx: Ctx, principal: Principal = Depends(require("agent:read"))
) -> dict[str, Any]:
    """One rollout with its spans (LLM and tool calls) and rewards."""
    return ok(await RolloutService(ctx).get(principal, rollout_id))


@router.post("/{rollout_id}/rewards", status_code=201, response_model=Envelope[RewardPublic])
async def add_reward(
    rollout_id: RolloutIdPath, body: RewardIn, ctx: Ctx, principal: Principal = Depends(require("agent:assign"))
) -> dict[str, Any]:
    """Reward a rollout, or one of its spans (``span_id``: an intermediate reward)."""
    reward = await RolloutService(ctx).add_reward(
        rollout_id,
        body.value,
        source="sdk",
        actor=principal,
        span_id=body.span_id,
        name=body.name,
        comment=body.comment,
        details=body.details,
    )
    return ok(reward, "Reward stored")
