"""A :class:`~agentlightning.rl.optimisers.base.Critic` backed by one of the platform's LLM providers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentlightning.agents.llm import ChatMessage, LLMRequest, ProviderFactory
from agentlightning.rl.optimisers.base import Critic


def llm_critic(
    providers: ProviderFactory,
    agent_config: Mapping[str, Any] | None = None,
    *,
    temperature: float = 0.7,
    max_tokens: int = 1024,
) -> Critic:
    """A critic that answers with the provider serving ``agent_config`` (``{"provider": ...,
    "model": ...}``; default: the platform's default LLM). Raises ``LLMError`` when the call fails."""
    config = dict(agent_config or {})
    provider = providers.for_agent(config)
    model = providers.model_for(config)

    async def critic(messages: Sequence[Mapping[str, str]]) -> str:
        request = LLMRequest(
            messages=[ChatMessage(role=str(m["role"]), content=str(m["content"])) for m in messages],  # type: ignore[arg-type]
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return (await provider.complete(request)).content

    return critic
