"""What a tool is: a named async function with a JSON-schema, a permission and a timeout."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentlightning.agents.llm.base import ToolSpec

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext
    from agentlightning.settings import Settings

#: Permission classes of tools. Settings may switch a whole class off.
PERMISSIONS = ("read", "memory", "data", "network", "execute")


class ToolError(Exception):
    """A tool refused or failed; the message is shown to the model."""


@dataclass(slots=True)
class ToolContext:
    """Where a tool call happens: the process context and the agent/task/session it serves."""

    settings: Settings
    app: AppContext | None = None
    agent_id: int | None = None
    task_id: int | None = None
    session_id: str | None = None
    #: The user the task runs for (``tasks.created_by``): memory is theirs alone.
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Tool(abc.ABC):
    """Base class of every tool, built-in or user-defined."""

    name: str
    description: str
    parameters: dict[str, Any]
    permission: str = "read"
    timeout_s: float = 10.0

    @abc.abstractmethod
    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Do the work; return JSON-able output or raise :class:`ToolError`."""

    def spec(self) -> ToolSpec:
        """The description handed to the model."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def enabled(self, settings: Settings) -> bool:
        """Whether configuration allows this tool at all (default: yes)."""
        return True

    async def unavailable(self, ctx: ToolContext) -> str | None:
        """Why the tool cannot be called right now (e.g. an admin's runtime switch), else None."""
        return None if self.enabled(ctx.settings) else f"tool {self.name!r} is disabled on this platform"


class FunctionTool(Tool):
    """A tool made from a plain (sync or async) Python function ``fn(args, ctx)`` or ``fn(**args)``."""

    def __init__(
        self,
        fn: Callable[..., Any] | Callable[..., Awaitable[Any]],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        permission: str = "read",
        timeout_s: float = 10.0,
    ) -> None:
        if permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {PERMISSIONS}")
        self.fn = fn
        self.name = name
        self.description = description
        self.parameters = parameters
        self.permission = permission
        self.timeout_s = timeout_s
        params = list(inspect.signature(fn).parameters)
        self._wants_ctx = params[:2] == ["args", "ctx"]

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Call the wrapped function (sync functions run in a thread)."""
        import asyncio

        if inspect.iscoroutinefunction(self.fn):
            return await (self.fn(args, ctx) if self._wants_ctx else self.fn(**args))
        if self._wants_ctx:
            return await asyncio.to_thread(self.fn, args, ctx)
        return await asyncio.to_thread(lambda: self.fn(**args))
