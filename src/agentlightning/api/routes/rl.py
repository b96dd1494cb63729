"""RL system endpoints: experiments (list, create, get, stop, metrics, checkpoints, evaluate),
algorithms and custom environments. Auto-RL (``auto-trigger`` / ``auto-status``) lives elsewhere."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import FileResponse

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import AfterIdQuery, IdPath, OffsetQuery, OptText, ReqText
from agentlightning.auth.service import Principal
from agentlightning.rl.experiments import ExperimentService
from agentlightning.rl.schemas import (
    AlgorithmPublic,
    CheckpointPublic,
    EnvironmentCatalog,
    EnvironmentCreate,
    EnvironmentPublic,
    EvaluationParams,
    EvaluationResult,
    ExperimentPage,
    ExperimentPublic,
    ExperimentRequest,
    MetricHistory,
)
from agentlightning.vocabulary import ExperimentStatus

router = APIRouter(prefix="/api/v2/rl", tags=["rl"], responses=ERROR_RESPONSES)

_CREATE_EXAMPLES: dict[str, Any] = {
    "flat": {
        "summary": "Flat",
        "value": {
            "name": "cartpole-ppo",
            "algorithm": "ppo",
            "environment": "CartPole-v1",
            "total_timesteps": 20000,
            "hyperparameters": {"learning_rate": 0.0003},
        },
    },
    "spec_row": {
        "summary": "The spec's rl_experiments row",
        "value": {
            "name": "cartpole-ppo",
            "algorithm": "ppo",
            "config": {"environment": "CartPole-v1", "total_timesteps": 20000},
            "agent_id": None,
        },
    },
    "agent": {
        "summary": "Optimise an agent's prompt (apo, bandit or grpo)",
        "value": {"name": "math-agent-apo", "algorithm": "apo", "agent_id": 1, "config": {"max_evaluations": 200}},
    },
}
_ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}
}


@router.get("/experiments", response_model=Envelope[ExperimentPage])
async def list_experiments(
    ctx: Ctx,
    principal: Principal = Depends(require("rl:read")),
    status: ExperimentStatus | None = Query(None),
    algorithm: Annotated[OptText, Query(max_length=50)] = None,
    limit: int = Query(50, ge=1, le=500),
    offset: OffsetQuery = 0,
) -> dict[str, Any]:
    """List RL experiments, newest first."""
    page = await ExperimentService(ctx).list_experiments(status=status, algorithm=algorithm, limit=limit, offset=offset)
    return ok(page)


@router.post("/experiments", status_code=201, response_model=Envelope[ExperimentPublic])
async def create_experiment(
    body: Annotated[ExperimentRequest, Body(openapi_examples=_CREATE_EXAMPLES)],
    ctx: Ctx,
    principal: Principal = Depends(require("rl:execute")),
) -> dict[str, Any]:
    """Validate and queue an experiment: classic (flat or the spec's row) or an agent optimiser
    (``apo | bandit | grpo`` with ``agent_id``); 422 names each invalid field."""
    data = await ExperimentService(ctx).submit(body.root, created_by=principal.username)
    return ok(data, "Experiment created and queued")


@router.get("/experiments/{experiment_id}", response_model=Envelope[ExperimentPublic])
async def get_experiment(
    experiment_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("rl:read"))
) -> dict[str, Any]:
    """One experiment with its latest metrics and checkpoints."""
    return ok(await ExperimentService(ctx).get(experiment_id))


@router.post("/experiments/{experiment_id}/stop", status_code=202, response_model=Envelope[ExperimentPublic])
async def stop_experiment(
    experiment_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("rl:execute"))
) -> dict[str, Any]:
    """Stop an experiment (a running one stops at its next check, within one rollout)."""
    data = await ExperimentService(ctx).stop(experiment_id)
    message = "Experiment stopped" if data["status"] == "stopped" else "Stop requested"
    return ok(data, message)


@router.get("/experiments/{experiment_id}/metrics", response_model=Envelope[MetricHistory])
async def experiment_metrics(
    experiment_id: IdPath,
    ctx: Ctx,
    principal: Principal = Depends(require("rl:read")),
    kind: str | None = Query(None, pattern="^(progress|evaluation)$"),
    after_id: AfterIdQuery = 0,
    limit: int = Query(1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """The streamed metric history (progress and evaluations)."""
    return ok(await ExperimentService(ctx).metric_history(experiment_id, kind=kind, after_id=after_id, limit=limit))


@router.get("/experiments/{experiment_id}/checkpoints", response_model=Envelope[list[CheckpointPublic]])
async def experiment_checkpoints(
    experiment_id: IdPath, ctx: Ctx, principal: Principal = Depends(require("rl:read"))
) -> dict[str, Any]:
    """The saved checkpoints, oldest first."""
    return ok(await ExperimentService(ctx).checkpoints(experiment_id))


@router.get(
    "/experiments/{experiment_id}/checkpoints/{checkpoint}/download", response_class=FileResponse, responses=_ZIP
)
async def download_checkpoint(
    experiment_id: IdPath,
    checkpoint: Annotated[ReqText, Path(max_length=64)],
    ctx: Ctx,
    principal: Principal = Depends(require("rl:read")),
) -> FileResponse:
    """Download a checkpoint ('latest', 'final' or its timesteps) as an SB3 zip."""
    path = await ExperimentService(ctx).checkpoint_path(experiment_id, checkpoint)
    return FileResponse(path, media_type="application/zip", filename=f"experiment-{experiment_id}-{checkpoint}.zip")


@router.post("/experiments/{experiment_id}/evaluate", response_model=Envelope[EvaluationResult])
async def evaluate_experiment(
    experiment_id: IdPath,
    ctx: Ctx,
    principal: Principal = Depends(require("rl:execute")),
    body: EvaluationParams | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint of a running or finished experiment."""
    result = await ExperimentService(ctx).evaluate(experiment_id, body or EvaluationParams())
    return ok(result, "Evaluation completed")


@router.get("/algorithms", response_model=Envelope[list[AlgorithmPublic]])
async def list_algorithms(principal: Principal = Depends(require("rl:read"))) -> dict[str, Any]:
    """Supported algorithms and the action spaces each can act in."""
    from agentlightning.rl.classic.algorithms import ALGORITHMS

    return ok(
        [
            {"name": a.name, "action_spaces": a.action_space_names, "off_policy": a.off_policy}
            for a in ALGORITHMS.values()
        ]
    )


@router.get("/environments", response_model=Envelope[EnvironmentCatalog])
async def list_environments(ctx: Ctx, principal: Principal = Depends(require("rl:read"))) -> dict[str, Any]:
    """Built-in Gymnasium ids, registered custom environments and the module allow-list."""
    return ok(await ExperimentService(ctx).list_environments())


@router.post("/environments", status_code=201, response_model=Envelope[EnvironmentPublic])
async def register_environment(
    body: EnvironmentCreate, ctx: Ctx, principal: Principal = Depends(require("rl:execute"))
) -> dict[str, Any]:
    """Register a custom Gymnasium environment from an allow-listed module."""
    return ok(
        await ExperimentService(ctx).register_environment(body, created_by=principal.username), "Environment registered"
    )
