"""When Redis goes away the API keeps answering (cache bypassed), and recovers when it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agentlightning.api.app import create_app
from agentlightning.auth.service import create_user
from agentlightning.storage import cache_keys
from tests.helpers import make_settings, unique
from tests.redis_server import RedisProcess


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


async def test_api_survives_a_redis_outage(postgres_url: str, private_redis: RedisProcess) -> None:
    settings = make_settings(postgres_url, private_redis.url, unique("outage"))
    app = create_app(settings)
    async with LifespanManager(app):
        ctx = app.state.ctx
        name = unique("dev")
        await create_user(ctx, name, "correct-horse-battery", "developer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            login = await client.post("/auth/login", json={"username": name, "password": "correct-horse-battery"})
            headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}

            private_redis.stop()
            # Requests keep working on the database alone, and quickly (no waiting on timeouts).
            for _ in range(3):
                assert (await client.get("/auth/profile", headers=headers)).status_code == 200
                assert (await client.get("/api/v2/health")).status_code == 200
                assert (await client.get("/api/v2/system/config", headers=headers)).status_code == 200
            relogin = await client.post("/auth/login", json={"username": name, "password": "correct-horse-battery"})
            assert relogin.status_code == 200
            assert not ctx.cache.healthy
            ready = await client.get("/api/v2/health", params={"ready": 1})
            assert ready.status_code == 503 and ready.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            status = (await client.get("/api/v2/system/status", headers=headers)).json()["data"]
            assert status["components"]["cache"]["status"] == "down" and status["status"] == "degraded"

            # A token revoked while Redis is down is still refused (the database has it).
            await client.post("/auth/logout", headers=headers)
            assert (await client.get("/auth/profile", headers=headers)).status_code == 401

            private_redis.start()
            await asyncio.sleep(ctx.cache.RETRY_AFTER_SECONDS + 0.1)
            assert (await client.get("/api/v2/health", params={"ready": 1})).status_code == 200
            await ctx.cache.set("probe", "1", 60)
            assert await ctx.cache.get("probe") == "1"
            assert ctx.cache.healthy
            new_headers = {
                "Authorization": "Bearer "
                + (
                    await client.post("/auth/login", json={"username": name, "password": "correct-horse-battery"})
                ).json()["data"]["access_token"]
            }
            await ctx.cache.delete(cache_keys.SYSTEM_CONFIG)
            assert (await client.get("/api/v2/system/config", headers=new_headers)).status_code == 200
            assert await ctx.cache.exists(cache_keys.SYSTEM_CONFIG)  # written to Redis again
