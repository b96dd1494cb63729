"""``python``: run a short Python program in the kernel-confined sandbox of :mod:`.sandbox`."""

from __future__ import annotations

from typing import Any

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError
from agentlightning.agents.tools.sandbox import SandboxLimits, SandboxUnavailable, run_python


class PythonTool(Tool):
    """Executes code in a throwaway, resource-limited, network-less, namespaced interpreter."""

    name = "python"
    description = (
        "Run a short Python 3 program (standard library only: math, statistics, json, re, datetime, ...) "
        "and return what it prints. No network; the only writable directory is its scratch directory."
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
            wall_seconds=min(s.sandbox_timeout_seconds, self.timeout_s - 1),
            cpu_seconds=max(1, int(s.sandbox_timeout_seconds)),
            memory_bytes=s.sandbox_memory_mb * 1024 * 1024,
            disk_bytes=s.sandbox_disk_mb * 1024 * 1024,
            max_processes=s.sandbox_max_processes,
        )
        try:
            result = await run_python(
                str(args["code"]), limits, python=s.sandbox_python, bwrap=s.sandbox_bwrap, uid_base=s.sandbox_uid_base
            )
        except SandboxUnavailable as exc:
            raise ToolError(f"the python sandbox is unavailable on this server: {exc}") from exc
        return result.to_dict()
