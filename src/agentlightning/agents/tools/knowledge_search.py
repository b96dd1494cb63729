"""``knowledge_search``: search the platform's knowledge base; hits carry item ids for citation.

The tool is a thin caller of the knowledge service's public :func:`search_for_agent`: hybrid
search, or full-text alone when semantic search is unavailable (no embedding model here).
"""

from __future__ import annotations

import logging
from typing import Any

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError
from agentlightning.errors import ServiceUnavailable
from agentlightning.knowledge import service as knowledge
from agentlightning.knowledge.schemas import SearchMode

log = logging.getLogger(__name__)


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
        """Return ``{"query", "results": [...]}``; each result has id, title, snippet, category, score."""
        if ctx.app is None:
            raise ToolError("knowledge base unavailable in this context")
        query, limit, category = args["query"], int(args.get("limit", 5)), args.get("category")
        try:
            results = await knowledge.search_for_agent(ctx.app, query, limit=limit, category=category)
        except ServiceUnavailable as exc:
            if exc.code != "SEMANTIC_SEARCH_UNAVAILABLE":
                raise
            log.warning("semantic search unavailable (%s); the knowledge tool searches full-text only", exc.message)
            results = await knowledge.search_for_agent(
                ctx.app, query, limit=limit, category=category, mode=SearchMode.fulltext
            )
        return {"query": query, "results": results}
