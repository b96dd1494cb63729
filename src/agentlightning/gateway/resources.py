"""An agent's promoted resources applied to a ``/v1`` call.

A call names a registered agent by ``X-Agent-Name`` / ``X-Agent-Id`` or ``model: "agent:<name>"``.
Its resources come from ``AgentService.resources`` (the same source as the runtime and the SDK,
so a promotion by Auto-RL reaches gateway traffic too) and are kept in memory for
``GATEWAY_CACHE_SECONDS`` per process, so a busy agent costs no query per call.

Applying them: the promoted system prompt replaces the request's first system (or developer)
message, or is inserted first; the promoted model and temperature replace the request's.

An agent whose resources carry a LoRA ``adapter`` (Auto-RL promoted a ``grpo`` candidate) is
served by :class:`AdapterModels`: the transformers provider (base model + adapter, the same one the
platform's runtime uses) behind the embedded model's OpenAI shapes. ``X-Agent-Apply: adapter``
(what the SDK sends) serves the adapter without rewriting the request: the SDK has applied the
agent's resources (and its bandit variant) itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agentlightning.agents.service import AgentService
from agentlightning.core.context import AppContext
from agentlightning.errors import UpstreamFailed
from agentlightning.gateway.registry import ModelRoute

if TYPE_CHECKING:
    from agentlightning.gateway.local import LocalModel
    from agentlightning.settings import Settings

AGENT_MODEL_PREFIX = "agent:"
#: ``X-Agent-Apply`` values: apply the agent's resources (default), or only serve its adapter.
APPLY_ALL = "all"
APPLY_ADAPTER = "adapter"
#: The provider name of adapter routes (a key's allow-list admits them with ``adapter/*``).
ADAPTER_PROVIDER = "adapter"


class ResourceCache:
    """Promoted resources by agent reference (id or name), each kept a few seconds."""

    def __init__(self, ctx: AppContext, ttl_s: float) -> None:
        self.ctx = ctx
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    async def get(self, ref: str) -> dict[str, Any]:
        """The resources of agent ``ref`` (``AGENT_NOT_FOUND`` when there is none)."""
        now = time.monotonic()
        entry = self._entries.get(ref)
        if entry is not None and entry[0] > now:
            return entry[1]
        resources = await AgentService(self.ctx).resources(ref)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[ref] = (now + self.ttl_s, resources)
        return resources

    def forget(self) -> None:
        """Drop every cached entry."""
        self._entries.clear()


def apply_resources(body: dict[str, Any], resources: dict[str, Any]) -> None:
    """Rewrite ``body`` (an OpenAI chat request) with the agent's prompt, model and temperature."""
    prompt = resources.get("system_prompt")
    if isinstance(prompt, str) and prompt:
        messages = body["messages"]
        for message in messages:
            if message.get("role") in ("system", "developer"):
                message["content"] = prompt
                break
        else:
            messages.insert(0, {"role": "system", "content": prompt})
    model = resources.get("model")
    if isinstance(model, str) and model:
        body["model"] = model
    temperature = resources.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        body["temperature"] = float(temperature)


class AdapterModels:
    """The adapters the gateway serves: one route and one loaded model per adapter directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._routes: dict[str, ModelRoute] = {}
        self._models: dict[str, LocalModel] = {}
        self._factory: Any = None

    def route(self, adapter: str) -> ModelRoute:
        """The route of an agent's ``config.adapter`` (``<base>+lora:<dir>``, provider ``adapter``)."""
        found = self._routes.get(adapter)
        if found is not None:
            return found
        from pathlib import Path

        from agentlightning.agents.llm import LLMError, resolve_upstream
        from agentlightning.agents.llm.transformers_provider import adapter_model_name

        try:
            upstream = resolve_upstream({"adapter": adapter}, self.settings)
            name = adapter_model_name(Path(str(upstream.adapter)))
        except LLMError as exc:
            raise UpstreamFailed(f"The agent's adapter cannot be served: {exc}", upstream_status=500) from exc
        route = ModelRoute(
            model=name, provider=ADAPTER_PROVIDER, kind="adapter", upstream_model=name, adapter=upstream.adapter
        )
        if len(self._routes) > 1_000:
            self._routes.clear()
        self._routes[adapter] = route
        return route

    def model(self, route: ModelRoute) -> LocalModel:
        """The loaded model serving ``route`` (the transformers provider; weights load on first call)."""
        key = str(route.adapter)
        found = self._models.get(key)
        if found is not None:
            return found
        from agentlightning.agents.llm import ProviderFactory
        from agentlightning.gateway.local import LocalModel

        if self._factory is None:
            self._factory = ProviderFactory(self.settings)
        provider = self._factory.for_agent({"adapter": key})
        model = LocalModel(provider, route.model, self.settings.local_model_max_new_tokens)
        if len(self._models) > 8:  # the provider keeps at most two engines loaded anyway
            self._models.clear()
        self._models[key] = model
        return model
