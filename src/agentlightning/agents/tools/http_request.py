"""``http_request``: HTTP GET to allow-listed hosts only (off unless ``HTTP_TOOL_ENABLED``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError

MAX_BODY_BYTES = 100_000


def host_allowed(host: str, allowed: list[str]) -> bool:
    """``host`` matches an entry exactly, or a ``*.example.com`` entry as a subdomain."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().strip()
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


class HttpRequestTool(Tool):
    """Fetches a URL with GET from a host on the allow-list; redirects must stay on it too."""

    name = "http_request"
    description = "Fetch a web resource with HTTP GET (only hosts on the platform's allow-list)."
    parameters = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "http(s) URL"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["url"],
        "additionalProperties": False,
    }
    permission = "network"
    timeout_s = 15.0

    def enabled(self, settings: Any) -> bool:
        """Off by default; needs ``HTTP_TOOL_ENABLED=true`` and an allow-list."""
        return bool(settings.http_tool_enabled and settings.http_tool_allowed_hosts)

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """GET the URL and return status, content type and (truncated) body."""
        if not self.enabled(ctx.settings):
            raise ToolError("the http_request tool is disabled on this platform")
        allowed = ctx.settings.http_tool_allowed_hosts
        url = str(args["url"])
        for _hop in range(4):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ToolError("only absolute http(s) URLs are allowed")
            if not host_allowed(parts.hostname, allowed):
                raise ToolError(f"host {parts.hostname!r} is not on the allow-list")
            async with httpx.AsyncClient(timeout=self.timeout_s - 1, follow_redirects=False) as client:
                async with client.stream("GET", url, headers=args.get("headers") or {}) as resp:
                    if resp.is_redirect and resp.headers.get("location"):
                        url = str(resp.url.join(resp.headers["location"]))
                        continue
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
        raise ToolError("too many redirects")
