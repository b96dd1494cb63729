"""Agent tools: the seven built-ins (calculator, knowledge_search, python, sql_query, http_request,
datetime, memory) and the registry users add their own tools to."""

from agentlightning.agents.tools.base import FunctionTool, Tool, ToolContext, ToolError
from agentlightning.agents.tools.registry import ToolRegistry, ToolResult, default_registry, tool

__all__ = ["FunctionTool", "Tool", "ToolContext", "ToolError", "ToolRegistry", "ToolResult", "default_registry", "tool"]
