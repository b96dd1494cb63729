"""The tool registry: the seven built-ins plus any tool a user registers in Python.

Register your own::

    from agentlightning.agents.tools.registry import tool

    @tool(name="word_count", description="Count words", parameters={
        "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
    def word_count(text: str) -> int:
        return len(text.split())

and list the module in ``AGENT_TOOL_MODULES`` so servers and workers import it at start-up.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agentlightning.agents.llm.base import ToolSpec
from agentlightning.agents.tools.base import PERMISSIONS, FunctionTool, Tool, ToolContext, ToolError
from agentlightning.settings import Settings

log = logging.getLogger(__name__)
MAX_OUTPUT_CHARS = 8000


@dataclass(slots=True)
class ToolResult:
    """Outcome of one tool call, as recorded in a trace span and shown to the model."""

    name: str
    ok: bool
    output: Any = None
    error: str | None = None
    latency_ms: float = 0.0

    def for_model(self) -> str:
        """The text the model sees (JSON, truncated)."""
        payload = {"ok": self.ok, "result": self.output} if self.ok else {"ok": False, "error": self.error}
        text = json.dumps(payload, default=str, ensure_ascii=False)
        if len(text) > MAX_OUTPUT_CHARS:
            text = text[:MAX_OUTPUT_CHARS] + "...(truncated)"
        return text


class ToolRegistry:
    """Named tools with validated arguments, per-tool timeouts and uniform error reporting."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Draft202012Validator] = {}

    def register(self, tool_: Tool, *, replace: bool = False) -> Tool:
        """Add a tool; its parameter schema must be a valid JSON Schema object schema."""
        if not replace and tool_.name in self._tools:
            raise ValueError(f"tool {tool_.name!r} is already registered")
        if tool_.permission not in PERMISSIONS:
            raise ValueError(f"tool {tool_.name!r}: permission must be one of {PERMISSIONS}")
        try:
            Draft202012Validator.check_schema(tool_.parameters)
        except SchemaError as exc:
            raise ValueError(f"tool {tool_.name!r}: invalid parameter schema: {exc.message}") from exc
        if tool_.parameters.get("type") != "object":
            raise ValueError(f"tool {tool_.name!r}: parameters must be an object schema")
        self._tools[tool_.name] = tool_
        self._validators[tool_.name] = Draft202012Validator(tool_.parameters)
        return tool_

    def unregister(self, name: str) -> None:
        """Remove a tool (no error when absent)."""
        self._tools.pop(name, None)
        self._validators.pop(name, None)

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Every registered tool name."""
        return sorted(self._tools)

    def available(self, settings: Settings, allowed: list[str] | None = None) -> list[Tool]:
        """Tools enabled by configuration, restricted to ``allowed`` names when given."""
        tools = [t for t in self._tools.values() if t.enabled(settings)]
        if allowed is not None:
            wanted = set(allowed)
            tools = [t for t in tools if t.name in wanted]
        return sorted(tools, key=lambda t: t.name)

    async def specs_now(self, ctx: ToolContext, allowed: list[str] | None = None) -> list[ToolSpec]:
        """The descriptions of the tools usable right now (runtime switches applied)."""
        tools = [t for t in self._tools.values() if allowed is None or t.name in set(allowed)]
        usable = [t for t in tools if await t.unavailable(ctx) is None]
        return [t.spec() for t in sorted(usable, key=lambda t: t.name)]

    def specs(self, settings: Settings, allowed: list[str] | None = None) -> list[ToolSpec]:
        """The model-facing descriptions of the available tools."""
        return [t.spec() for t in self.available(settings, allowed)]

    def describe(self, settings: Settings) -> list[dict[str, Any]]:
        """Catalogue for the API: name, description, schema, permission, timeout, enabled."""
        return [
            {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "permission": t.permission,
                "timeout_s": t.timeout_s,
                "enabled": t.enabled(settings),
            }
            for t in sorted(self._tools.values(), key=lambda t: t.name)
        ]

    def validate(self, name: str, args: dict[str, Any]) -> list[str]:
        """Schema violations of ``args`` for tool ``name`` (empty when valid)."""
        validator = self._validators[name]
        return [
            f"{'/'.join(str(p) for p in err.path) or '(root)'}: {err.message}"
            for err in sorted(validator.iter_errors(args), key=lambda e: list(e.path))
        ]

    async def invoke(
        self, name: str, args: dict[str, Any], ctx: ToolContext, allowed: list[str] | None = None
    ) -> ToolResult:
        """Validate and run a tool within its timeout; never raises for tool failures."""
        started = time.perf_counter()

        def done(ok: bool, output: Any = None, error: str | None = None) -> ToolResult:
            return ToolResult(name, ok, output, error, (time.perf_counter() - started) * 1000)

        tool_ = self._tools.get(name)
        if tool_ is None or (allowed is not None and name not in allowed):
            return done(False, error=f"unknown or not permitted tool {name!r}; available: {allowed or self.names()}")
        reason = await tool_.unavailable(ctx)
        if reason is not None:
            return done(False, error=reason)
        problems = self.validate(name, args)
        if problems:
            return done(False, error="invalid arguments: " + "; ".join(problems))
        try:
            output = await asyncio.wait_for(tool_.run(args, ctx), timeout=tool_.timeout_s)
        except asyncio.TimeoutError:
            return done(False, error=f"tool {name!r} timed out after {tool_.timeout_s:g}s")
        except ToolError as exc:
            return done(False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a tool bug is reported to the model, not raised
            log.exception("tool %s failed", name)
            return done(False, error=f"{type(exc).__name__}: {exc}")
        return done(True, output=output)


def builtin_tools() -> list[Tool]:
    """Fresh instances of the seven built-in tools."""
    from agentlightning.agents.tools.calculator import CalculatorTool
    from agentlightning.agents.tools.datetime_tool import DateTimeTool
    from agentlightning.agents.tools.http_request import HttpRequestTool
    from agentlightning.agents.tools.knowledge_search import KnowledgeSearchTool
    from agentlightning.agents.tools.memory_tool import MemoryTool
    from agentlightning.agents.tools.python_exec import PythonTool
    from agentlightning.agents.tools.sql_query import SqlQueryTool

    return [
        CalculatorTool(),
        KnowledgeSearchTool(),
        PythonTool(),
        SqlQueryTool(),
        HttpRequestTool(),
        DateTimeTool(),
        MemoryTool(),
    ]


_default: ToolRegistry | None = None


def default_registry() -> ToolRegistry:
    """The process-wide registry, holding the built-ins (created on first use)."""
    global _default
    if _default is None:
        registry = ToolRegistry()
        for t in builtin_tools():
            registry.register(t)
        _default = registry
    return _default


def tool(
    *,
    name: str,
    description: str,
    parameters: dict[str, Any],
    permission: str = "read",
    timeout_s: float = 10.0,
    registry: ToolRegistry | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a function as a tool (``fn(**args)`` or ``fn(args, ctx)``)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        (registry or default_registry()).register(
            FunctionTool(
                fn,
                name=name,
                description=description,
                parameters=parameters,
                permission=permission,
                timeout_s=timeout_s,
            ),
            replace=True,
        )
        return fn

    return decorate


def load_tool_modules(settings: Settings) -> None:
    """Import the user modules named in ``AGENT_TOOL_MODULES`` (they register tools on import)."""
    for module in settings.agent_tool_modules:
        importlib.import_module(module)
