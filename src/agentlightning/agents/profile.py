"""An agent's effective configuration as the runtime and scheduler read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer the task accurately and concisely."
DEFAULT_MAX_CONCURRENCY = 4


@dataclass(slots=True)
class AgentProfile:
    """Identity plus typed accessors over the agent's JSON ``config``."""

    id: int
    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    config_version: int = 1
    status: str = "active"

    @classmethod
    def from_row(cls, row: Any) -> AgentProfile:
        """Build from an ``Agent`` ORM row (or anything with the same attributes)."""
        return cls(
            id=row.id,
            name=row.name,
            type=row.type,
            config=dict(row.config or {}),
            config_version=int(getattr(row, "config_version", 1) or 1),
            status=row.status or "active",
        )

    @property
    def system_prompt(self) -> str:
        """The agent's instructions."""
        return str(self.config.get("system_prompt") or DEFAULT_SYSTEM_PROMPT)

    @property
    def tools(self) -> list[str]:
        """Names of the tools the agent may use."""
        return [str(t) for t in self.config.get("tools") or []]

    @property
    def temperature(self) -> float:
        """Sampling temperature."""
        return float(self.config.get("temperature", 0.2))

    @property
    def max_tokens(self) -> int:
        """Completion token budget per LLM call."""
        return int(self.config.get("max_tokens", 512))

    @property
    def max_steps(self) -> int | None:
        """Per-agent step limit (None: the platform default)."""
        value = self.config.get("max_steps")
        return int(value) if value is not None else None

    @property
    def max_concurrency(self) -> int:
        """Tasks of this agent that may run at once across all workers."""
        return max(1, int(self.config.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)))

    @property
    def cache_responses(self) -> bool:
        """Whether answers may be served from the response cache."""
        return bool(self.config.get("cache", True))
