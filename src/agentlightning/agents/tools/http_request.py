"""``http_request``: HTTP GET under the platform's egress rules (see :mod:`.egress`).

Off unless an admin turns it on: ``HTTP_TOOL_ENABLED`` / ``HTTP_TOOL_ALLOWED_HOSTS`` are the
defaults, and the runtime system configuration (``http_tool_enabled``, ``http_tool_allowed_hosts``,
changed with ``PUT /api/v2/system/config``) overrides them for the next call.
"""

from __future__ import annotations

from typing import Any

import httpx

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError
from agentlightning.agents.tools.egress import (
    EgressDenied,
    EgressPolicy,
    egress_client,
    host_allowed,
    parse_networks,
    parse_ports,
)

__all__ = ["HttpRequestTool", "host_allowed", "http_policy"]

MAX_BODY_BYTES = 100_000
MAX_REDIRECTS = 3
#: Request headers an agent may not set (they would speak for the platform or re-route the call).
FORBIDDEN_HEADERS = frozenset({"host", "authorization", "cookie", "proxy-authorization", "connection", "forwarded"})


async def http_settings(ctx: ToolContext) -> tuple[bool, list[str]]:
    """Whether the tool is on and its allow-list, as the admin configured them right now."""
    enabled, hosts = ctx.settings.http_tool_enabled, list(ctx.settings.http_tool_allowed_hosts)
    if ctx.app is not None:
        from agentlightning.core.system_config import get_config

        config = await get_config(ctx.app)
        if config.http_tool_enabled is not None:
            enabled = config.http_tool_enabled
        if config.http_tool_allowed_hosts is not None:
            hosts = list(config.http_tool_allowed_hosts)
    return enabled and bool(hosts), hosts


def http_policy(settings: Any, hosts: list[str]) -> EgressPolicy:
    """The egress policy of the tool: the allow-list, allowed ports and admin-allowed networks."""
    return EgressPolicy(
        allowed_hosts=tuple(hosts),
        ports=parse_ports(settings.http_tool_allowed_ports),
        allowed_networks=parse_networks(settings.egress_allowed_networks),
    )


class HttpRequestTool(Tool):
    """Fetches a URL with GET; the host, its resolved address and every redirect hop are checked."""

    name = "http_request"
    description = "Fetch a web resource with HTTP GET (only hosts on the platform's allow-list)."
    parameters = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "http(s) URL", "maxLength": 2048},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["url"],
        "additionalProperties": False,
    }
    permission = "network"
    timeout_s = 15.0

    def enabled(self, settings: Any) -> bool:
        """Whether the deployment's defaults turn the tool on (the runtime config may differ)."""
        return bool(settings.http_tool_enabled and settings.http_tool_allowed_hosts)

    async def unavailable(self, ctx: ToolContext) -> str | None:
        """Why the tool cannot be used right now (the admin's runtime switch), else None."""
        enabled, _ = await http_settings(ctx)
        return None if enabled else "the http_request tool is disabled on this platform"

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """GET the URL and return status, content type and (truncated) body."""
        enabled, hosts = await http_settings(ctx)
        if not enabled:
            raise ToolError("the http_request tool is disabled on this platform")
        policy = http_policy(ctx.settings, hosts)
        headers = {k: v for k, v in (args.get("headers") or {}).items() if k.lower() not in FORBIDDEN_HEADERS}
        try:
            async with egress_client(
                policy, timeout=self.timeout_s - 1, follow_redirects=True, max_redirects=MAX_REDIRECTS
            ) as client:
                async with client.stream("GET", str(args["url"]), headers=headers) as resp:
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > MAX_BODY_BYTES:
                            break
                    return {
                        "url": str(resp.url),
                        "status_code": resp.status_code,
                        "content_type": resp.headers.get("content-type", ""),
                        "body": bytes(body[:MAX_BODY_BYTES]).decode(resp.encoding or "utf-8", "replace"),
                        "truncated": len(body) > MAX_BODY_BYTES,
                    }
        except EgressDenied as exc:
            raise ToolError(f"request refused: {exc}") from exc
        except httpx.TooManyRedirects as exc:
            raise ToolError("too many redirects") from exc
        except httpx.HTTPError as exc:
            raise ToolError(f"request failed: {type(exc).__name__}: {exc}") from exc
