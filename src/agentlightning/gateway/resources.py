"""An agent's promoted resources applied to a ``/v1`` call.

A call names a registered agent by ``X-Agent-Name`` / ``X-Agent-Id`` or ``model: "agent:<name>"``.
Its resources come from ``AgentService.resources`` (the same source as the runtime and the SDK,
so a promotion by Auto-RL reaches gateway traffic too) and are kept in memory for
``GATEWAY_CACHE_SECONDS`` per process, so a busy agent costs no query per call.

Applying them: the promoted system prompt replaces the request's first system (or developer)
message, or is inserted first; the promoted model and temperature replace the request's.
"""

from __future__ import annotations

import time
from typing import Any

from agentlightning.agents.service import AgentService
from agentlightning.core.context import AppContext

AGENT_MODEL_PREFIX = "agent:"


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
