"""An agent's effective configuration as the runtime and scheduler read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast, get_args

from sqlalchemy import select

from agentlightning.agents.llm.base import ToolChoice

if TYPE_CHECKING:
    from agentlightning.storage.db import Database

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
    def tool_choice(self) -> ToolChoice:
        """``auto`` (default), or ``required``: the first reply of a run must call a tool."""
        value = self.config.get("tool_choice") or "auto"
        return cast(ToolChoice, value) if value in get_args(ToolChoice) else "auto"

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


class ProfileCache:
    """Agent profiles by id, valid while the agent's ``config_version`` is unchanged.

    Every change to what an agent does increments ``config_version`` (see
    :class:`~agentlightning.agents.service.AgentService`), so a claim that already knows each
    agent's current version reads the ``agents`` row only when it changed.  Status is not part
    of the profile's cache key: claims filter on it in SQL.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._profiles: dict[int, AgentProfile] = {}

    async def get_many(self, db: Database, versions: dict[int, int]) -> dict[int, AgentProfile]:
        """Profiles for ``{agent id: current config_version}``; stale or missing ones are loaded
        (in a session of their own, only then)."""
        from agentlightning.storage.models import Agent

        found: dict[int, AgentProfile] = {}
        missing: list[int] = []
        for agent_id, version in versions.items():
            profile = self._profiles.get(agent_id)
            if profile is not None and profile.config_version == version:
                found[agent_id] = profile
            else:
                missing.append(agent_id)
        if missing:
            if len(self._profiles) + len(missing) > self.max_entries:
                self._profiles.clear()
            async with db.session() as session:
                rows = (await session.execute(select(Agent).where(Agent.id.in_(missing)))).scalars().all()
            for row in rows:
                found[row.id] = self._profiles[row.id] = AgentProfile.from_row(row)
        return found
