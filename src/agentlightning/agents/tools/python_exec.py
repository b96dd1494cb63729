"""``python``: run a short Python program in the sandbox of :mod:`.sandbox` and return its output."""

from __future__ import annotations

from typing import Any

from agentlightning.agents.tools.base import Tool, ToolContext
from agentlightning.agents.tools.sandbox import SandboxLimits, run_python


class PythonTool(Tool):
    """Executes code in a throwaway, resource-limited, network-less interpreter."""

    name = "python"
    description = (
        "Run a short Python 3 program (standard library only: math, statistics, json, re, datetime, ...) "
        "and return what it prints. No network, no files outside its own scratch directory."
    )
    parameters = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The program; print the results."}},
        "required": ["code"],
        "additionalProperties": False,
    }
    permission = "execute"
    timeout_s = 30.0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Run the code; the result has stdout, stderr, exit code and whether it timed out."""
        s = ctx.settings
        limits = SandboxLimits(
            wall_seconds=s.sandbox_timeout_seconds,
            cpu_seconds=max(1, int(s.sandbox_timeout_seconds)),
            memory_bytes=s.sandbox_memory_mb * 1024 * 1024,
        )
        result = await run_python(str(args["code"]), limits)
        return result.to_dict()
