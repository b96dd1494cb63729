"""Production keeps the API docs, the schema and /metrics private; settings open or close them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agentlightning.api.app import create_app
from agentlightning.settings import Settings
from tests.helpers import login_as, unique
from tests.redis_server import free_port

PRIVATE_PATHS = ("/docs", "/redoc", "/openapi.json", "/metrics")


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, app


def test_production_defaults_are_private() -> None:
    production = Settings(_env_file=None, agl_env="production")  # type: ignore[call-arg]
    assert production.docs_access == "admin" and production.metrics_access == "admin"
    development = Settings(_env_file=None)  # type: ignore[call-arg]
    assert development.docs_access == "public" and development.metrics_access == "public"


async def test_production_mode_requires_an_admin(settings_factory: Callable[..., Settings]) -> None:
    async with _client(settings_factory(agl_env="production", agl_events_prefix=unique("exp"))) as (client, app):
        developer = await login_as(client, app, "developer")  # type: ignore[arg-type]
        admin = await login_as(client, app, "admin")  # type: ignore[arg-type]
        for path in PRIVATE_PATHS:
            anonymous = await client.get(path)
            assert anonymous.status_code == 401, (path, anonymous.status_code)
            assert anonymous.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
            assert (await client.get(path, headers=developer)).status_code == 403, path
            assert (await client.get(path, headers=admin)).status_code == 200, path
        schema = await client.get("/openapi.json", headers=admin)
        assert "/api/v2/health" in schema.json()["paths"]
        assert "http_requests_total" in (await client.get("/metrics", headers=admin)).text


async def test_public_mode_serves_everyone(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(agl_env="production", agl_docs_access="public", agl_metrics_access="public")
    async with _client(settings) as (client, _):
        for path in PRIVATE_PATHS:
            assert (await client.get(path)).status_code == 200, path


async def test_off_mode_hides_them(settings_factory: Callable[..., Settings]) -> None:
    async with _client(settings_factory(agl_docs_access="off", agl_metrics_access="off")) as (client, app):
        admin = await login_as(client, app, "admin")  # type: ignore[arg-type]
        for path in PRIVATE_PATHS:
            assert (await client.get(path, headers=admin)).status_code == 404, path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_metrics_on_a_separate_port(settings_factory: Callable[..., Settings]) -> None:
    port = free_port()
    settings = settings_factory(agl_env="production", agl_metrics_port=port)
    async with _client(settings) as (client, _):
        assert (await client.get("/metrics")).status_code == 401
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scraped.status_code == 200 and "http_requests_total" in scraped.text


async def test_docs_pages_work_offline_with_the_platforms_own_assets(client: httpx.AsyncClient) -> None:
    """Swagger UI and ReDoc load their scripts and styles from the platform, never from a CDN, and
    the pages' security policy allows nothing from elsewhere."""
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200, response.text
        html = response.text
        assert "http://" not in html and "https://" not in html, f"{page} refers to another host"
        assets = [
            url for url in ("/static/docs/swagger-ui-bundle.js", "/static/docs/redoc.standalone.js") if url in html
        ]
        assert assets, html
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200 and len(served.content) > 100_000
        policy = response.headers["content-security-policy"]
        assert "http" not in policy and "'self'" in policy
    assert (await client.get("/static/docs/swagger-ui.css")).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Agent Lightning"
