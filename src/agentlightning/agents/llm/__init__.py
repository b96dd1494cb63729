"""LLM providers and the factory that picks one for an agent.

An agent's config names ``provider``: ``"openai"`` (any OpenAI-compatible endpoint),
``"local"`` (the embedded llama.cpp model chosen by ``LOCAL_MODEL``) or ``"auto"`` (the default: OpenAI-compatible
when ``LLM_BASE_URL`` is set, otherwise local).  An agent may also override
``base_url`` and ``model``.
"""

from __future__ import annotations

import threading
from typing import Any

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

__all__ = [
    "ChatMessage",
    "LLMError",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "ProviderFactory",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

PROVIDERS = ("auto", "openai", "local")


class ProviderFactory:
    """Builds and caches one provider per (kind, endpoint) for a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, str | None], LLMProvider] = {}
        self._lock = threading.Lock()

    def kind_for(self, agent_config: dict[str, Any]) -> str:
        """Resolve ``auto`` to the concrete provider kind."""
        kind = str(agent_config.get("provider") or "auto")
        if kind not in PROVIDERS:
            raise LLMError(f"unknown provider {kind!r}; expected one of {PROVIDERS}")
        if kind == "auto":
            has_endpoint = bool(agent_config.get("base_url") or self.settings.llm_base_url)
            kind = "openai" if has_endpoint else "local"
        return kind

    def model_for(self, agent_config: dict[str, Any]) -> str:
        """The model name a call for this agent will use."""
        if self.kind_for(agent_config) == "local":
            from agentlightning.agents.llm.local_models import get_spec

            return get_spec(self.settings.local_model).name
        return str(agent_config.get("model") or self.settings.llm_model)

    def for_agent(self, agent_config: dict[str, Any]) -> LLMProvider:
        """The provider that serves an agent with this config."""
        kind = self.kind_for(agent_config)
        base_url = agent_config.get("base_url") or self.settings.llm_base_url
        key = (kind, base_url if kind == "openai" else None)
        with self._lock:
            provider = self._cache.get(key)
            if provider is None:
                provider = self._cache[key] = self._build(kind, base_url)
            return provider

    def _build(self, kind: str, base_url: str | None) -> LLMProvider:
        s = self.settings
        if kind == "local":
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

        return OpenAICompatProvider(
            base_url=base_url,
            api_key=s.llm_api_key,
            default_model=s.llm_model,
            timeout_s=s.llm_timeout_seconds,
            max_retries=s.llm_max_retries,
        )

    async def aclose(self) -> None:
        """Close every provider built so far."""
        for provider in list(self._cache.values()):
            await provider.aclose()
        self._cache.clear()
