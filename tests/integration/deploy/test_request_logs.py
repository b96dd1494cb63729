"""Through the real app: a log line written while a response is sent (as uvicorn's access log is)
carries the gateway's request id, the authenticated user and the route template, as JSON."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
from fastapi import FastAPI

from agentlightning.observability.logs import build_handler
from agentlightning.observability.request_context import RequestContextMiddleware
from tests.helpers import login_as

access_log = logging.getLogger("agentlightning.test.access")


def with_access_log(app: Any) -> Any:
    """Logs one line when the response starts, from inside the request, like uvicorn's access log."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_and_log(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                access_log.info("%s %s %s", scope["method"], scope["path"], message["status"])
            await send(message)

        await app(scope, receive, send_and_log)

    return wrapped


async def test_request_log_line_has_request_id_user_and_route(app: FastAPI) -> None:
    stream = io.StringIO()
    access_log.handlers[:] = [build_handler("json", stream)]
    access_log.propagate = False
    access_log.setLevel(logging.INFO)
    served = RequestContextMiddleware(with_access_log(app))
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        headers = await login_as(http, app, "admin")
        response = await http.get(
            "/api/v2/agents/agent_does_not_exist", headers={**headers, "X-Request-ID": "req_logtest1"}
        )
        anonymous = await http.get("/api/v2/health")
    assert response.status_code == 404 and anonymous.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    agent_line = next(line for line in lines if "agent_does_not_exist" in line["message"])
    assert agent_line["request_id"] == "req_logtest1" == response.headers["x-request-id"]
    assert agent_line["route"] == "/api/v2/agents/{agent_ref}"
    assert agent_line["user"] and agent_line["user"].startswith("admin")
    health_line = next(line for line in lines if "/api/v2/health" in line["message"])
    assert health_line["user"] is None and health_line["route"] == "/api/v2/health"
    assert health_line["request_id"] == anonymous.headers["x-request-id"]
