"""The gateway: one ``/v1/chat/completions`` call from admission to recording.

Per call, in order: the key's policy (cached a few seconds) -> body size -> parse and validate ->
the named agent's promoted resources (cached) -> route the model (an agent whose resources carry a
LoRA ``adapter`` is served by its base model plus the adapter, in this process, whatever the
request's model) -> the key's model allow-list ->
request rate and token budget -> forward (upstream HTTP, or the embedded model) -> answer.
The upstream's reply is passed on as it came (a stream event by event); its usage is read on the
way and the call is queued for the recorder, which charges the tokens and writes the span.

One :class:`Gateway` per process context (:func:`gateway_for`); the app closes it at shutdown.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import ValidationError

from agentlightning.agents.llm.upstream_http import UpstreamClient
from agentlightning.auth.service import Principal
from agentlightning.core.context import AppContext
from agentlightning.errors import (
    AppError,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UpstreamFailed,
    ValidationFailed,
)
from agentlightning.gateway.local import LocalModel
from agentlightning.gateway.policy import Budgets, Policy, effective_policy, identity_of
from agentlightning.gateway.recorder import CallRecord, Recorder
from agentlightning.gateway.registry import ModelRoute, ProviderRegistry
from agentlightning.gateway.resources import (
    AGENT_MODEL_PREFIX,
    APPLY_ADAPTER,
    APPLY_ALL,
    AdapterModels,
    ResourceCache,
    apply_resources,
)
from agentlightning.gateway.schemas import ROLLOUT_ID, ChatCompletionIn, RolloutRewardIn
from agentlightning.gateway.upstream import (
    Completion,
    SSEReader,
    StreamAccumulator,
    completion_from_json,
)
from agentlightning.observability import metrics
from agentlightning.rollouts.schemas import TASK_ROLLOUT_PREFIX


@dataclass(slots=True)
class ChatResult:
    """What the route sends: a JSON body, or a stream of server-sent events, plus headers."""

    headers: dict[str, str]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class _Call:
    """One call in flight (what the recorder and the metrics need at its end)."""

    principal: Principal
    policy: Policy
    who: str
    route: ModelRoute
    label: str
    rollout_id: str
    grouped: bool
    agent_id: int | None
    request: dict[str, Any]
    started: float
    started_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


class Gateway:
    """The per-process gateway: registry, pooled upstream client, caches, budgets, recorder."""

    def __init__(self, ctx: AppContext) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.settings = settings
        self.registry = ProviderRegistry(settings)
        self.upstreams = UpstreamClient()
        self.budgets = Budgets(ctx)
        self.resources = ResourceCache(ctx, settings.gateway_cache_seconds)
        self.adapters = AdapterModels(settings)
        self.recorder = Recorder(
            ctx,
            capacity=settings.gateway_record_queue_size,
            batch_size=settings.gateway_record_batch_size,
            linger_s=settings.gateway_record_interval_seconds,
        )
        self._policies: dict[int | None, tuple[float, Policy]] = {}
        self._local: LocalModel | None = None
        self._metric_children: dict[tuple[str, str], Any] = {}

    # --- policy ---------------------------------------------------------------------------------
    async def policy_for(self, principal: Principal) -> Policy:
        """The caller's policy (its key's, cached ``GATEWAY_CACHE_SECONDS``; defaults for a JWT)."""
        key = principal.api_key_id
        now = time.monotonic()
        entry = self._policies.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        policy = await effective_policy(self.ctx, key)
        if len(self._policies) > 100_000:
            self._policies.clear()
        self._policies[key] = (now + self.settings.gateway_cache_seconds, policy)
        return policy

    def forget_policy(self, api_key_id: int) -> None:
        """Drop a key's cached policy (after an admin changed it)."""
        self._policies.pop(api_key_id, None)

    # --- models ---------------------------------------------------------------------------------
    async def models(self, principal: Principal) -> dict[str, Any]:
        """``GET /v1/models``: the listed models the caller's policy allows."""
        policy = await self.policy_for(principal)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": provider}
            for name, provider in self.registry.models()
            if policy.allows(name, provider)
        ]
        return {"object": "list", "data": data}

    async def model(self, principal: Principal, model: str) -> dict[str, Any]:
        """``GET /v1/models/{model}``: one model the caller may use (``model_not_found`` otherwise)."""
        route = self.registry.route(model)
        policy = await self.policy_for(principal)
        if not policy.allows(route.model, route.provider):
            raise NotFound("MODEL_NOT_FOUND", f"The model '{model}' does not exist", details={"param": "model"})
        return {"id": model, "object": "model", "created": 0, "owned_by": route.provider}

    # --- chat -----------------------------------------------------------------------------------
    async def chat(
        self,
        principal: Principal,
        raw: bytes,
        *,
        rollout_id: str | None = None,
        agent_ref: str | None = None,
        apply: str | None = None,
    ) -> ChatResult:
        """Serve one chat completion (see the module docstring for the steps). ``apply`` (the
        ``X-Agent-Apply`` header) is ``all`` (the default: the agent's prompt, model and temperature
        replace the request's) or ``adapter`` (serve the agent's adapter, leave the request as sent:
        the SDK applied the agent's resources itself; a 404 ``AGENT_HAS_NO_ADAPTER`` when it has none)."""
        label = "unknown"
        forwarded = False
        try:
            started = time.perf_counter()
            policy = await self.policy_for(principal)
            if len(raw) > policy.max_request_bytes:
                raise PayloadTooLarge(
                    "PAYLOAD_TOO_LARGE",
                    f"The request body ({len(raw)} bytes) exceeds this key's limit of {policy.max_request_bytes} bytes",
                    details={"limit": policy.max_request_bytes},
                )
            body = _parse(raw)
            if apply not in (None, APPLY_ALL, APPLY_ADAPTER):
                raise BadRequest("INVALID_AGENT_APPLY", f"X-Agent-Apply is '{APPLY_ALL}' or '{APPLY_ADAPTER}'")
            agent_id = None
            adapter_route: ModelRoute | None = None
            requested = body["model"]
            if agent_ref is None and requested.startswith(AGENT_MODEL_PREFIX):
                agent_ref = requested[len(AGENT_MODEL_PREFIX) :]
            if agent_ref:
                if len(agent_ref) > 255:
                    raise BadRequest("INVALID_AGENT", "An agent reference is at most 255 characters")
                resources = await self.resources.get(agent_ref)
                agent_id = resources.get("agent_id")
                adapter = resources.get("adapter")
                if adapter:
                    adapter_route = self.adapters.route(str(adapter))
                    if apply != APPLY_ADAPTER:
                        apply_resources(body, resources)
                    body["model"] = adapter_route.model
                elif apply == APPLY_ADAPTER:
                    raise NotFound(  # a 404: OpenAI clients retry a 409, not a 404
                        "AGENT_HAS_NO_ADAPTER",
                        f"Agent '{agent_ref}' is not served with an adapter (any more): call its model directly",
                    )
                else:
                    apply_resources(body, resources)
                    if body["model"] != requested and not requested.startswith(AGENT_MODEL_PREFIX):
                        try:
                            self.registry.route(body["model"])
                        except NotFound:  # the agent's model is not served here: keep the caller's
                            body["model"] = requested
                if body["model"].startswith(AGENT_MODEL_PREFIX):
                    raise NotFound(
                        "MODEL_NOT_FOUND",
                        f"Agent '{agent_ref}' names no model; send one in 'model'",
                        details={"param": "model"},
                    )
            route = adapter_route or self.registry.route(body["model"])
            label = self.registry.label(route)
            if not policy.allows(route.model, route.provider):
                raise Forbidden(
                    "MODEL_NOT_ALLOWED",
                    f"This API key may not use the model '{route.model}'",
                    details={"param": "model"},
                )
            grouped = rollout_id is not None
            if rollout_id is None:
                rollout_id = uuid.uuid4().hex
            elif not ROLLOUT_ID.match(rollout_id) or rollout_id.startswith(TASK_ROLLOUT_PREFIX):
                raise BadRequest(
                    "INVALID_ROLLOUT_ID",
                    f"X-Rollout-Id must match ^[A-Za-z0-9_.:-]{{1,64}}$ and not start with '{TASK_ROLLOUT_PREFIX}'",
                )
            who = identity_of(principal.api_key_id, principal.user_id)
            await self.budgets.admit(who, policy)
            call = _Call(
                principal=principal,
                policy=policy,
                who=who,
                route=route,
                label=label,
                rollout_id=rollout_id,
                grouped=grouped,
                agent_id=agent_id if isinstance(agent_id, int) else None,
                request=body,
                started=started,
                started_at=datetime.now(timezone.utc),
                metadata={"model": route.model, "provider": route.provider},
            )
            headers = {"X-Rollout-Id": rollout_id}
            forwarded = True
            if body.get("stream"):
                return ChatResult(headers=headers, stream=await self._stream(call))
            return ChatResult(headers=headers, body=await self._complete(call))
        except AppError as exc:
            if not forwarded:  # refused before forwarding (later failures are counted by _finish)
                metrics.GATEWAY_ERRORS.labels(model=label, code=exc.code).inc()
            raise

    async def _complete(self, call: _Call) -> bytes:
        route = call.route
        try:
            if route.kind in ("local", "adapter"):
                payload, completion = await self._local_model(route).complete(call.request)
            else:
                forwarded = {**call.request, "model": route.upstream_model}
                payload = await self.upstreams.complete(
                    route.url, route.api_key, orjson.dumps(forwarded), call.policy.upstream_timeout_s, model=route.model
                )
                try:
                    completion = completion_from_json(orjson.loads(payload))
                except orjson.JSONDecodeError as exc:
                    raise UpstreamFailed(
                        f"The upstream for '{route.model}' answered with something other than JSON", upstream_status=502
                    ) from exc
        except AppError as exc:
            self._finish(call, Completion(), error=exc)
            raise
        self._finish(call, completion)
        return payload

    async def _stream(self, call: _Call) -> AsyncIterator[bytes]:
        route = call.route
        options = call.request.get("stream_options")
        client_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if route.kind in ("local", "adapter"):
            completion = Completion()
            try:
                source = self._local_model(route).stream(call.request, completion, client_usage)
            except AppError as exc:
                self._finish(call, completion, error=exc)
                raise
            return self._relay_local(call, source, completion)
        forwarded = {
            **call.request,
            "model": route.upstream_model,
            "stream_options": {**(options or {}), "include_usage": True},
        }
        try:
            chunks = await self.upstreams.stream(
                route.url, route.api_key, orjson.dumps(forwarded), call.policy.upstream_timeout_s, model=route.model
            )
        except AppError as exc:
            self._finish(call, Completion(), error=exc)
            raise
        return self._relay(call, chunks, client_usage)

    async def _relay(self, call: _Call, chunks: AsyncIterator[bytes], client_usage: bool) -> AsyncIterator[bytes]:
        """Pass the upstream's events on while reading them; usage-only chunks the client did not
        ask for are kept back (the gateway asks for usage to count tokens)."""
        reader = SSEReader()
        accumulator = StreamAccumulator()
        error: AppError | None = None
        try:
            async for chunk in chunks:
                for raw, data in reader.feed(chunk):
                    if data is not None and data != b"[DONE]":
                        try:
                            parsed = orjson.loads(data)
                        except orjson.JSONDecodeError:
                            parsed = None
                        if isinstance(parsed, dict):
                            accumulator.feed(parsed)
                            if not client_usage and parsed.get("usage") and not parsed.get("choices"):
                                continue
                    yield raw + b"\n\n"
            for raw, _ in reader.rest():
                yield raw + b"\n\n"
        except AppError as exc:
            error = exc
            yield b"data: " + orjson.dumps({"error": openai_error_object(exc)}) + b"\n\n"
        finally:
            self._finish(call, accumulator.result(), error=error)
            await _close(chunks)  # a client that went away frees the upstream connection now

    async def _relay_local(
        self, call: _Call, source: AsyncIterator[bytes], completion: Completion
    ) -> AsyncIterator[bytes]:
        error: AppError | None = None
        try:
            async for event in source:
                yield event
        except AppError as exc:
            error = exc
            yield b"data: " + orjson.dumps({"error": openai_error_object(exc)}) + b"\n\n"
        finally:
            self._finish(call, completion, error=error)
            await _close(source)  # a client that went away stops the generation now

    def _local_model(self, route: ModelRoute) -> LocalModel:
        if route.kind == "adapter":
            return self.adapters.model(route)
        if self._local is None:
            from agentlightning.agents.llm import ProviderFactory
            from agentlightning.agents.llm.local_models import get_spec

            provider = ProviderFactory(self.settings).for_agent({"provider": "local"})
            self._local = LocalModel(
                provider, get_spec(self.settings.local_model).name, self.settings.local_model_max_new_tokens
            )
        return self._local

    # --- the end of a call ------------------------------------------------------------------------
    def _finish(self, call: _Call, completion: Completion, *, error: AppError | None = None) -> None:
        """Metrics now; budget charge and span in the background."""
        elapsed = time.perf_counter() - call.started
        outcome = "ok" if error is None else "error"
        children = self._metric_children.get((call.label, outcome))
        if children is None:
            children = (
                metrics.GATEWAY_REQUESTS.labels(model=call.label, outcome=outcome),
                metrics.GATEWAY_LATENCY.labels(model=call.label),
                metrics.GATEWAY_TOKENS.labels(model=call.label, direction="in"),
                metrics.GATEWAY_TOKENS.labels(model=call.label, direction="out"),
            )
            self._metric_children[(call.label, outcome)] = children
        children[0].inc()
        children[1].observe(elapsed)
        if completion.prompt_tokens:
            children[2].inc(completion.prompt_tokens)
        if completion.completion_tokens:
            children[3].inc(completion.completion_tokens)
        if error is not None:
            metrics.GATEWAY_ERRORS.labels(model=call.label, code=error.code).inc()
        tokens = completion.total_tokens
        budgets, policy, who = self.budgets, call.policy, call.who

        async def charge() -> None:
            await budgets.charge(who, policy, tokens)

        request = call.request
        record_io = self.settings.gateway_record_calls
        span_input: dict[str, Any] = {"model": request.get("model")}
        if record_io:
            span_input["messages"] = request.get("messages")
            if request.get("tools"):
                span_input["tools"] = request.get("tools")
            for key in ("temperature", "max_tokens", "max_completion_tokens", "tool_choice", "stream"):
                if request.get(key) is not None:
                    span_input[key] = request[key]
        output = {"message": completion.message(), "finish_reason": completion.finish_reason} if record_io else {}
        span = {
            "span_id": uuid.uuid4().hex,
            "trace_id": call.rollout_id,
            "kind": "llm",
            "name": f"chat {call.route.model}"[:255],
            "status": "ok" if error is None else "error",
            "input": span_input,
            "output": output,
            "error": None if error is None else error.message[:2000],
            "model": completion.model or call.route.upstream_model,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "latency_ms": round(elapsed * 1000.0, 3),
            "started_at": call.started_at,
        }
        self.recorder.put(
            CallRecord(
                actor=call.principal,
                rollout_id=call.rollout_id,
                grouped=call.grouped,
                agent_id=call.agent_id,
                span=span,
                rollout_input={"messages": request.get("messages")} if record_io else None,
                rollout_output=output or None,
                metadata=call.metadata,
                charge=charge if tokens > 0 and policy.budget is not None else None,
            )
        )

    # --- rewards --------------------------------------------------------------------------------
    async def reward(self, principal: Principal, rollout_id: str, body: RolloutRewardIn) -> dict[str, Any]:
        """Attach a reward to one of the caller's rollouts (after the calls queued so far are written)."""
        from agentlightning.rollouts.service import RolloutService

        await self.recorder.flush()  # the caller's calls so far are stored before the reward
        stored = await RolloutService(self.ctx).add_reward(
            rollout_id,
            body.reward,
            source="gateway",
            actor=principal,  # ROLLOUT_NOT_FOUND unless the caller may see the rollout
            span_id=body.span_id,
            comment=body.comment,
        )
        return {**stored, "object": "rollout.reward", "reward": stored["value"]}

    async def close(self) -> None:
        """Write what is queued and close the upstream connections."""
        await self.recorder.close()
        await self.upstreams.close()


async def _close(stream: AsyncIterator[bytes]) -> None:
    """Close an async generator (no-op for other iterators)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _parse(raw: bytes) -> dict[str, Any]:
    """The request body as a validated dict (extra OpenAI parameters kept as sent)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("INVALID_JSON", f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("INVALID_JSON", "The request body must be a JSON object")
    try:
        ChatCompletionIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationFailed(
            "VALIDATION_ERROR",
            f"Invalid '{param}': {first.get('msg')}",
            details={
                "param": param,
                "errors": [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()],
            },
        ) from exc
    return data


#: OpenAI error ``code`` for the platform's codes where OpenAI has its own word.
OPENAI_CODES = {
    "AUTHENTICATION_REQUIRED": "invalid_api_key",
    "INVALID_API_KEY": "invalid_api_key",
    "TOKEN_EXPIRED": "invalid_api_key",
    "TOKEN_REVOKED": "invalid_api_key",
    "INVALID_TOKEN": "invalid_api_key",
    "MODEL_NOT_FOUND": "model_not_found",
    "MODEL_NOT_ALLOWED": "model_not_allowed",
    "RATE_LIMITED": "rate_limit_exceeded",
    "TOKEN_BUDGET_EXHAUSTED": "insufficient_quota",
    "PAYLOAD_TOO_LARGE": "request_too_large",
    "VALIDATION_ERROR": "invalid_request_error",
    "INVALID_JSON": "invalid_json",
}


def openai_error_object(exc: AppError) -> dict[str, Any]:
    """An error as OpenAI's ``{"message", "type", "param", "code"}`` (an upstream's own kept)."""
    from agentlightning.errors import UpstreamFailed

    if isinstance(exc, UpstreamFailed) and exc.payload:
        payload = exc.payload
        return {
            "message": str(payload.get("message") or exc.message),
            "type": str(payload.get("type") or "upstream_error"),
            "param": payload.get("param") if isinstance(payload.get("param"), str) else None,
            "code": str(payload["code"]) if payload.get("code") is not None else "upstream_error",
        }
    param = exc.details.get("param") if isinstance(exc.details.get("param"), str) else None
    return {
        "message": exc.message,
        "type": openai_error_type(exc),
        "param": param,
        "code": OPENAI_CODES.get(exc.code, exc.code.lower()),
    }


def openai_error_type(exc: AppError) -> str:
    """OpenAI's error ``type`` for a platform error."""
    from agentlightning.errors import (
        Forbidden,
        OperationFailed,
        RateLimited,
        ServiceUnavailable,
        Unauthorized,
        UpstreamFailed,
    )

    if isinstance(exc, Unauthorized):
        return "authentication_error"
    if isinstance(exc, Forbidden):
        return "permission_error"
    if isinstance(exc, RateLimited):
        return "insufficient_quota" if exc.code == "TOKEN_BUDGET_EXHAUSTED" else "rate_limit_error"
    if isinstance(exc, UpstreamFailed):
        return "upstream_error"
    if isinstance(exc, (OperationFailed, ServiceUnavailable)):
        return "server_error"
    return "invalid_request_error"


_GATEWAYS: dict[int, tuple[weakref.ref[Any], Gateway]] = {}


def gateway_for(ctx: AppContext) -> Gateway:
    """The :class:`Gateway` of a process context (made on first use)."""
    entry = _GATEWAYS.get(id(ctx))
    if entry is not None and entry[0]() is ctx:
        return entry[1]
    gateway = Gateway(ctx)
    for key in [k for k, (ref, _) in _GATEWAYS.items() if ref() is None]:
        del _GATEWAYS[key]
    _GATEWAYS[id(ctx)] = (weakref.ref(ctx), gateway)
    return gateway


async def close_gateway(ctx: AppContext) -> None:
    """Close the context's gateway, if one was made."""
    entry = _GATEWAYS.pop(id(ctx), None)
    if entry is not None:
        await entry[1].close()
