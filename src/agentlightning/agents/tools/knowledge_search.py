"""``knowledge_search``: search the platform's knowledge base; hits carry item ids for citation."""

from __future__ import annotations

from typing import Any

from agentlightning.agents.knowledge_bridge import search_knowledge
from agentlightning.agents.tools.base import Tool, ToolContext, ToolError


class KnowledgeSearchTool(Tool):
    """Finds knowledge items relevant to a query."""

    name = "knowledge_search"
    description = "Search the knowledge base. Returns items with id, title and a snippet; cite ids like [#12]."
    parameters = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "category": {"type": "string"},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    permission = "read"
    timeout_s = 15.0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Return ``{"query", "results": [...]}``."""
        if ctx.app is None:
            raise ToolError("knowledge base unavailable in this context")
        results = await search_knowledge(ctx.app, args["query"], int(args.get("limit", 5)), args.get("category"))
        return {"query": args["query"], "results": results}
