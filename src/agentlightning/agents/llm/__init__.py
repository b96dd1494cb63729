"""LLM providers and the factory that picks one for an agent.

Upstreams are the admin's, never the agent author's: an agent's config names a ``provider``

* ``"auto"`` (the default): the platform's default upstream (``LLM_BASE_URL`` with
  ``LLM_API_KEY``) when one is set, otherwise the embedded local model;
* ``"default"`` (or its old name ``"openai"``): the platform's default upstream;
* ``"local"``: the embedded llama.cpp model chosen by ``LOCAL_MODEL``;
* any name in ``LLM_PROVIDERS`` (JSON: ``{"vllm": {"base_url": ..., "api_key": ...}}``).

An agent whose promoted resources carry a LoRA ``adapter`` (``config.adapter``, set by Auto-RL
when a ``grpo`` candidate wins) is served by
:class:`~agentlightning.agents.llm.transformers_provider.TransformersProvider`: the local model the
adapter was trained on plus the adapter, whatever ``provider`` says (the adapter only fits that model).

An agent may instead bring its own upstream: ``base_url`` **with its own** ``api_key`` (the
platform's keys are never sent there), and only to hosts the egress rules let through
(``LLM_CUSTOM_ALLOWED_HOSTS`` / ``LLM_CUSTOM_ALLOWED_PORTS``; the resolved address must be public,
see :mod:`agentlightning.agents.tools.egress`), checked on every connection. ``model`` picks the model.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentlightning.agents.llm.base import (
    ChatMessage,
    LLMError,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ToolCall,
    ToolSpec,
    Usage,
)
from agentlightning.settings import Settings

if TYPE_CHECKING:
    from agentlightning.agents.llm.upstream_http import UpstreamClient

__all__ = [
    "ChatMessage",
    "LLMError",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "ProviderFactory",
    "ToolCall",
    "ToolSpec",
    "Upstream",
    "Usage",
    "validate_llm_config",
]

#: Provider names every deployment has; admins add more with ``LLM_PROVIDERS``.
PROVIDERS = ("auto", "default", "openai", "local")
#: Where an agent's own API key is kept in its config (write-only: the API never returns it).
API_KEY_FIELD = "api_key"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where an agent's LLM calls go and with which key."""

    kind: str  # "local" | "openai" | "transformers"
    name: str  # provider name, or "custom" for an agent's own base URL
    base_url: str | None = None
    api_key: str | None = None
    custom: bool = False
    #: the LoRA adapter directory (kind "transformers")
    adapter: str | None = None

    def cache_key(self) -> tuple[str, str, str | None, str]:
        """Identity of a built client (the key is hashed, never kept as a dict key)."""
        digest = hashlib.sha256((self.api_key or "").encode()).hexdigest()
        return (self.kind, self.name, self.base_url or self.adapter, digest)


def provider_names(settings: Settings) -> list[str]:
    """Every provider name an agent may use on this deployment."""
    return sorted(set(PROVIDERS) | set(settings.llm_providers))


def resolve_upstream(agent_config: dict[str, Any], settings: Settings) -> Upstream:
    """The upstream an agent's config selects; raises :class:`LLMError` when it may not be used."""
    adapter = agent_config.get("adapter")
    if adapter:
        from agentlightning.agents.llm.transformers_provider import resolve_adapter

        path = resolve_adapter(str(adapter), settings.rl_artifacts_dir)
        return Upstream("transformers", "adapter", adapter=str(path))
    kind = str(agent_config.get("provider") or "auto")
    base_url = agent_config.get("base_url")
    if base_url:
        if kind not in ("auto", "openai", "custom"):
            raise LLMError(f"provider {kind!r} cannot be combined with a custom base_url")
        own_key = agent_config.get(API_KEY_FIELD)
        if not own_key:
            raise LLMError("a custom base_url needs the agent's own api_key (the platform's key is never sent there)")
        return Upstream("openai", "custom", str(base_url), str(own_key), custom=True)
    if kind in settings.llm_providers:
        entry = settings.llm_providers[kind]
        return Upstream("openai", kind, entry.base_url, entry.api_key)
    if kind == "auto":
        kind = "default" if settings.llm_base_url else "local"
    if kind == "local":
        return Upstream("local", "local")
    if kind in ("default", "openai"):
        return Upstream("openai", "default", settings.llm_base_url, settings.llm_api_key)
    raise LLMError(f"unknown provider {kind!r}; expected one of {provider_names(settings)}")


def validate_llm_config(agent_config: dict[str, Any], settings: Settings) -> None:
    """Refuse (``ValueError``) an agent config whose upstream is unknown or not allowed."""
    from agentlightning.agents.tools.egress import EgressDenied, check_static

    if agent_config.get("adapter"):
        try:
            resolve_upstream({"adapter": agent_config["adapter"]}, settings)
        except LLMError as exc:
            raise ValueError(str(exc)) from exc
        # The rest must be valid too: it serves the agent again once the adapter is rolled back.
        agent_config = {k: v for k, v in agent_config.items() if k != "adapter"}
    try:
        upstream = resolve_upstream(agent_config, settings)
    except LLMError as exc:
        raise ValueError(str(exc)) from exc
    if upstream.custom:
        try:
            check_static(str(upstream.base_url), custom_upstream_policy(settings))
        except EgressDenied as exc:
            raise ValueError(f"base_url refused: {exc}") from exc


def custom_upstream_policy(settings: Settings) -> Any:
    """The egress policy for agents' own upstreams."""
    from agentlightning.agents.tools.egress import EgressPolicy, parse_networks, parse_ports

    return EgressPolicy(
        allowed_hosts=tuple(settings.llm_custom_allowed_hosts),
        ports=parse_ports(settings.llm_custom_allowed_ports),
        allowed_networks=parse_networks(settings.egress_allowed_networks),
    )


class ProviderFactory:
    """Builds and caches one provider per upstream (and key) for a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, str, str | None, str], LLMProvider] = {}
        self._lock = threading.Lock()
        #: The pooled HTTP client its OpenAI-compatible providers share (made with the first one).
        self._upstreams: UpstreamClient | None = None

    def kind_for(self, agent_config: dict[str, Any]) -> str:
        """The concrete provider kind (``openai``, ``local`` or ``transformers``)."""
        return resolve_upstream(agent_config, self.settings).kind

    def model_for(self, agent_config: dict[str, Any]) -> str:
        """The model name a call for this agent will use."""
        upstream = resolve_upstream(agent_config, self.settings)
        if upstream.kind == "transformers":
            from pathlib import Path

            from agentlightning.agents.llm.transformers_provider import adapter_model_name

            return adapter_model_name(Path(str(upstream.adapter)))
        if upstream.kind == "local":
            from agentlightning.agents.llm.local_models import get_spec

            return get_spec(self.settings.local_model).name
        if agent_config.get("model"):
            return str(agent_config["model"])
        if upstream.name in self.settings.llm_providers and self.settings.llm_providers[upstream.name].model:
            return str(self.settings.llm_providers[upstream.name].model)
        return self.settings.llm_model

    def for_agent(self, agent_config: dict[str, Any]) -> LLMProvider:
        """The provider that serves an agent with this config."""
        upstream = resolve_upstream(agent_config, self.settings)
        key = upstream.cache_key()
        with self._lock:
            provider = self._cache.get(key)
            if provider is None:
                provider = self._cache[key] = self._build(upstream)
            return provider

    def _build(self, upstream: Upstream) -> LLMProvider:
        s = self.settings
        if upstream.kind == "transformers":
            from agentlightning.agents.llm.transformers_provider import TransformersProvider

            return TransformersProvider(
                adapter=upstream.adapter,
                model_dir=s.local_model_dir,
                max_new_tokens=s.local_model_max_new_tokens,
            )
        if upstream.kind == "local":
            from agentlightning.agents.llm.local import LocalLlamaProvider

            return LocalLlamaProvider(
                model=s.local_model,
                model_dir=s.local_model_dir,
                model_path=s.local_model_path,
                max_new_tokens=s.local_model_max_new_tokens,
                n_ctx=s.local_model_context,
                n_threads=s.local_model_threads,
                parallel=s.local_model_parallel,
            )
        from agentlightning.agents.llm.openai_compat import OpenAICompatProvider
        from agentlightning.agents.llm.upstream_http import UpstreamClient

        if self._upstreams is None:
            self._upstreams = UpstreamClient()
        return OpenAICompatProvider(
            base_url=upstream.base_url,
            api_key=upstream.api_key,
            default_model=s.llm_model,
            timeout_s=s.llm_timeout_seconds,
            max_retries=s.llm_max_retries,
            egress=custom_upstream_policy(s) if upstream.custom else None,
            http_client=s.llm_http_client,
            upstreams=self._upstreams,
        )

    @property
    def open_providers(self) -> int:
        """Providers built and not closed yet (none after :meth:`aclose`)."""
        return len(self._cache)

    async def aclose(self) -> None:
        """Close every provider built so far (and their pooled client)."""
        for provider in list(self._cache.values()):
            await provider.aclose()
        self._cache.clear()
        if self._upstreams is not None:
            await self._upstreams.close()
