"""Which upstream serves a model name: the provider registry of the gateway.

Built once from the settings the admin controls (never from a request):

* every ``LLM_PROVIDERS`` entry serves the names in its ``models`` list, its ``model``, and any
  ``<provider>/<model>`` (the prefix is stripped before forwarding);
* the default upstream (``LLM_BASE_URL``) serves ``LLM_MODEL`` and ``default/<model>``;
* the embedded local model (``GATEWAY_LOCAL_MODEL``) serves ``local``, ``local/<anything>`` and
  its catalogue name;
* any other name goes to ``GATEWAY_FALLBACK_PROVIDER`` when set, else it is ``model_not_found``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentlightning.errors import NotFound
from agentlightning.settings import Settings

LOCAL = "local"
DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """Where one model name goes: a provider, its kind and the model name the upstream expects."""

    model: str  # the name the client used
    provider: str  # LLM_PROVIDERS name, "default" or "local"
    kind: str  # "openai" (an OpenAI-compatible HTTP upstream), "local" or "adapter" (an agent's LoRA)
    upstream_model: str
    base_url: str | None = None
    api_key: str | None = None
    adapter: str | None = None  # the adapter directory (kind "adapter")

    @property
    def url(self) -> str:
        """The upstream's chat-completions URL."""
        return f"{(self.base_url or '').rstrip('/')}/chat/completions"


@dataclass(frozen=True, slots=True)
class _Upstream:
    name: str
    kind: str
    base_url: str | None
    api_key: str | None


class ProviderRegistry:
    """Model name -> :class:`ModelRoute`, from the admin's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._upstreams: dict[str, _Upstream] = {}
        self._exact: dict[str, tuple[str, str]] = {}  # name -> (provider, upstream model)
        self._local_name: str | None = None
        if settings.llm_base_url:
            self._upstreams[DEFAULT] = _Upstream(DEFAULT, "openai", settings.llm_base_url, settings.llm_api_key)
            self._exact.setdefault(settings.llm_model, (DEFAULT, settings.llm_model))
        for name, entry in settings.llm_providers.items():
            self._upstreams[name] = _Upstream(name, "openai", entry.base_url, entry.api_key)
            for model in [*entry.models, *([entry.model] if entry.model else [])]:
                self._exact[model] = (name, model)  # an explicit list wins over the default's model
        if settings.gateway_local_model:
            from agentlightning.agents.llm.local_models import get_spec

            self._upstreams[LOCAL] = _Upstream(LOCAL, "local", None, None)
            self._local_name = get_spec(settings.local_model).name
            self._exact.setdefault(LOCAL, (LOCAL, self._local_name))
            self._exact.setdefault(self._local_name, (LOCAL, self._local_name))
        self._cache: dict[str, ModelRoute] = {}

    def route(self, model: str) -> ModelRoute:
        """The route of ``model``; ``NotFound("MODEL_NOT_FOUND")`` when no upstream serves it."""
        found = self._cache.get(model)
        if found is not None:
            return found
        target = self._exact.get(model)
        if target is None:
            provider, sep, rest = model.partition("/")
            if sep and rest and provider in self._upstreams:
                target = (provider, (self._local_name or rest) if provider == LOCAL else rest)
        fallback = self.settings.gateway_fallback_provider
        if target is None and fallback and fallback in self._upstreams:
            target = (fallback, (self._local_name or model) if fallback == LOCAL else model)
        if target is None:
            raise NotFound(
                "MODEL_NOT_FOUND",
                f"The model '{model}' does not exist or is not served by this gateway",
                details={"param": "model"},
            )
        upstream = self._upstreams[target[0]]
        route = ModelRoute(
            model=model,
            provider=upstream.name,
            kind=upstream.kind,
            upstream_model=target[1] or model,
            base_url=upstream.base_url,
            api_key=upstream.api_key,
        )
        if len(self._cache) < 10_000:
            self._cache[model] = route
        return route

    def label(self, route: ModelRoute) -> str:
        """A bounded metric label for a route: its name when listed, else ``<provider>/*``."""
        return route.model if route.model in self._exact else f"{route.provider}/*"

    def models(self) -> list[tuple[str, str]]:
        """Every listed model name with its provider (prefixed forms are not enumerated)."""
        return sorted((name, provider) for name, (provider, _) in self._exact.items())
