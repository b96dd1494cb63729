"""OpenTelemetry: a request produces a server span with its route and child spans for its SQL."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentlightning.api.app import create_app
from agentlightning.api.tracing import setup_tracing, tracing_requested
from agentlightning.auth.gate import gate_for
from tests.helpers import login_as


async def test_requests_and_statements_are_traced(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory()
    assert not tracing_requested(settings)
    app = create_app(settings)
    exporter = InMemorySpanExporter()
    setup_tracing(app, settings, exporter=exporter)
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            headers = await login_as(client, app, "user")
            user_id = (await client.get("/auth/profile", headers=headers)).json()["data"]["user_id"]
            # The user's record is cached after login; without it the request reads ``users``.
            await gate_for(app.state.ctx).forget_record(user_id)
            exporter.clear()
            response = await client.get("/auth/profile", headers=headers)
            assert response.status_code == 200
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.attributes and s.attributes.get("http.route") == "/auth/profile"]
    assert server, [s.name for s in spans]
    trace_id = server[0].context.trace_id
    statements = [
        s for s in spans if s.attributes and "db.statement" in s.attributes and s.context.trace_id == trace_id
    ]
    assert statements, "the profile lookup's SQL should be a child of the request span"
    assert any("users" in str(s.attributes["db.statement"]) for s in statements)
