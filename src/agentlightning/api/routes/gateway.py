"""The OpenAI-compatible gateway: ``/v1/chat/completions``, ``/v1/models`` and rollout rewards,
answered in OpenAI's formats (errors too: see ``api/openai_errors.py``), plus the admin's
per-key gateway policy under ``/api/v2/gateway`` (the platform envelope).

Authentication is the platform's: an API key (or access token) in ``Authorization: Bearer`` (what
OpenAI clients send) or ``X-API-Key``. The work is :mod:`agentlightning.gateway`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse

from agentlightning.api.deps import Ctx, require
from agentlightning.api.envelope import ERROR_RESPONSES, Envelope, ok
from agentlightning.api.params import IdPath
from agentlightning.auth.service import Principal
from agentlightning.gateway.policy import PolicyService
from agentlightning.gateway.schemas import (
    ChatCompletionIn,
    ChatCompletionOut,
    GatewayPolicyIn,
    GatewayPolicyPublic,
    ModelList,
    ModelPublic,
    OpenAIErrorBody,
    RolloutRewardIn,
    RolloutRewardOut,
)
from agentlightning.gateway.service import gateway_for

_OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorBody, "description": description}
    for status, description in (
        (400, "Invalid request (OpenAI error format)"),
        (401, "Missing or invalid API key"),
        (403, "The key may not use this model"),
        (404, "Unknown model, agent or rollout"),
        (413, "Request body larger than the key's limit"),
        (429, "Request rate or token budget exhausted"),
        (500, "Upstream or internal error (the upstream's status is passed on)"),
        (502, "Upstream unreachable"),
        (504, "Upstream timed out"),
    )
}

router = APIRouter(prefix="/v1", tags=["openai"], responses=_OPENAI_ERRORS)
admin_router = APIRouter(prefix="/api/v2/gateway", tags=["gateway"], responses=ERROR_RESPONSES)

RolloutIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


@router.post(
    "/chat/completions",
    response_model=None,
    response_class=Response,
    responses={
        200: {
            "model": ChatCompletionOut,
            "description": "A chat.completion, or with stream=true server-sent chat.completion.chunk events",
            "content": {"text/event-stream": {}},
        }
    },
    openapi_extra={
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": size},
                "description": text,
            }
            for name, size, text in (
                ("X-Rollout-Id", 64, "Group calls into this rollout (^[A-Za-z0-9_.:-]{1,64}$); echoed back"),
                ("X-Agent-Name", 255, "Apply this agent's promoted resources"),
                ("X-Agent-Id", 32, "Apply this agent's promoted resources (by id)"),
                (
                    "X-Agent-Apply",
                    16,
                    "'all' (default): the agent's prompt, model and temperature replace the request's;"
                    " 'adapter': only serve the agent's LoRA adapter (404 agent_has_no_adapter without one)",
                ),
            )
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChatCompletionIn.model_json_schema()}},
        },
    },
)
async def chat_completions(
    request: Request, ctx: Ctx, principal: Principal = Depends(require("agent:assign"))
) -> Response:
    """OpenAI's chat completions (streaming, tools, ``stream_options.include_usage``) routed to the
    model's upstream or the embedded model; ``X-Rollout-Id`` groups calls into one rollout (echoed
    back), ``X-Agent-Name``/``X-Agent-Id`` or ``model: "agent:<name>"`` applies an agent's promoted
    resources."""
    # The optional headers are read here (documented in openapi_extra) rather than declared as
    # parameters: FastAPI's per-parameter validation is a measurable share of a proxied call.
    sent = request.headers
    result = await gateway_for(ctx).chat(
        principal,
        await request.body(),
        rollout_id=sent.get("x-rollout-id"),
        agent_ref=sent.get("x-agent-id") or sent.get("x-agent-name"),
        apply=sent.get("x-agent-apply"),
    )
    if result.stream is not None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **result.headers}
        return StreamingResponse(result.stream, media_type="text/event-stream", headers=headers)
    return Response(result.body, media_type="application/json", headers=result.headers)


@router.get("/models", response_model=ModelList)
async def list_models(ctx: Ctx, principal: Principal = Depends(require("agent:read"))) -> dict[str, Any]:
    """The models this key may call (OpenAI's model list)."""
    return await gateway_for(ctx).models(principal)


@router.get("/models/{model:path}", response_model=ModelPublic)
async def get_model(
    model: Annotated[str, Path(min_length=1, max_length=256)],
    ctx: Ctx,
    principal: Principal = Depends(require("agent:read")),
) -> dict[str, Any]:
    """One model, if this key may call it (OpenAI's model object)."""
    return await gateway_for(ctx).model(principal, model)


@router.post("/rollouts/{rollout_id}/reward", response_model=RolloutRewardOut)
async def reward_rollout(
    rollout_id: RolloutIdPath,
    body: RolloutRewardIn,
    ctx: Ctx,
    principal: Principal = Depends(require("agent:assign")),
) -> dict[str, Any]:
    """Attach a reward to one of your rollouts (or one of its spans: ``span_id``)."""
    return await gateway_for(ctx).reward(principal, rollout_id, body)


@admin_router.get("/keys/{api_key_id}/policy", response_model=Envelope[GatewayPolicyPublic])
async def get_key_policy(
    api_key_id: IdPath, ctx: Ctx, _: Principal = Depends(require("system:write"))
) -> dict[str, Any]:
    """An API key's gateway policy, the values in force and the tokens used in this window (admin)."""
    return ok(await PolicyService(ctx).get(api_key_id))


@admin_router.put("/keys/{api_key_id}/policy", response_model=Envelope[GatewayPolicyPublic])
async def put_key_policy(
    api_key_id: IdPath, body: GatewayPolicyIn, ctx: Ctx, principal: Principal = Depends(require("system:write"))
) -> dict[str, Any]:
    """Set an API key's gateway policy: allowed models, request rate, token budget, body size,
    upstream timeout (null fields take the deployment's defaults) (admin)."""
    return ok(await PolicyService(ctx).put(api_key_id, body, principal.username), "Gateway policy saved")


@admin_router.delete("/keys/{api_key_id}/policy", response_model=Envelope[GatewayPolicyPublic])
async def delete_key_policy(
    api_key_id: IdPath, ctx: Ctx, _: Principal = Depends(require("system:write"))
) -> dict[str, Any]:
    """Remove an API key's gateway policy; the defaults apply again (admin)."""
    return ok(await PolicyService(ctx).delete(api_key_id), "Gateway policy removed")
