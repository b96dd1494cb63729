"""``memory``: the agent's long-term notes (remember a fact, recall facts later)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from agentlightning.agents.memory import NoteStore
from agentlightning.agents.tools.base import Tool, ToolContext, ToolError


class MemoryTool(Tool):
    """Remember and recall notes that persist across tasks and sessions of one agent, per user."""

    name = "memory"
    description = (
        "Long-term memory. action='remember' stores 'content' (optionally under a 'key'); "
        "action='recall' returns notes matching 'query' (or the latest notes)."
    )
    parameters = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["remember", "recall"]},
            "content": {"type": "string"},
            "key": {"type": "string", "maxLength": 255},
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20},
        },
        "required": ["action"],
        "additionalProperties": False,
    }
    permission = "memory"
    timeout_s = 5.0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Store or look up the calling agent's notes for the user the task runs for."""
        if ctx.app is None or ctx.agent_id is None:
            raise ToolError("memory is only available to a registered agent")
        store = NoteStore(ctx.app.db)
        if args["action"] == "remember":
            if not args.get("content"):
                raise ToolError("'remember' needs 'content'")
            note = await store.remember(ctx.agent_id, ctx.user, args["content"], args.get("key"), ctx.task_id)
            return {"remembered": asdict(note)}
        notes = await store.recall(ctx.agent_id, ctx.user, args.get("query"), int(args.get("limit", 5)))
        return {"notes": [asdict(n) for n in notes]}
