"""Health, readiness, status, statistics and the admin-only runtime configuration."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from agentlightning.core.context import AppContext
from agentlightning.core.system_config import get_config
from agentlightning.storage import cache_keys


async def test_readiness_checks_database_and_redis(client: httpx.AsyncClient, backend: str) -> None:
    response = await client.get("/api/v2/health", params={"ready": 1})
    assert response.status_code == 200
    checks = response.json()["data"]["checks"]
    assert checks["database"]["status"] == "ok"
    assert ("redis" in checks) is (backend == "postgres")
    assert (await client.get("/api/v2/health/ready")).status_code == 200


async def test_status_lists_components(client: httpx.AsyncClient, login, backend: str) -> None:  # type: ignore[no-untyped-def]
    headers = await login("developer")
    data = (await client.get("/api/v2/system/status", headers=headers)).json()["data"]
    components = data["components"]
    assert components["database"]["dialect"] == ("postgresql" if backend == "postgres" else "sqlite")
    assert components["cache"]["backend"] == ("redis" if backend == "postgres" else "memory")
    assert components["event_bus"]["status"] == "ok"
    assert data["status"] == "healthy"


async def test_stats_counts_and_hit_rate(client: httpx.AsyncClient, login) -> None:  # type: ignore[no-untyped-def]
    headers = await login("admin")
    data = (await client.get("/api/v2/system/stats", headers=headers)).json()["data"]
    assert data["users"] >= 2  # the bootstrap admin and this one
    assert {"agents", "tasks", "knowledge_items", "rl_experiments", "uptime_seconds", "cache"} <= set(data)
    # Reading the configuration is a counted cache lookup.
    await client.get("/api/v2/system/config", headers=headers)
    await client.put("/api/v2/system/config", json={}, headers=headers)
    assert "hit_rate" in (await client.get("/api/v2/system/stats", headers=headers)).json()["data"]["cache"]


async def test_config_update_is_validated_persisted_and_cached(
    client: httpx.AsyncClient,
    login,
    app: FastAPI,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    admin = await login("admin")
    developer = await login("developer")

    refused = await client.put("/api/v2/system/config", json={"max_task_attempts": 5}, headers=developer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"

    for bad in ({"max_task_attempts": 0}, {"no_such_setting": 1}, {"auto_rl": {"success_threshold": 3}}):
        response = await client.put("/api/v2/system/config", json=bad, headers=admin)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"

    updated = await client.put(
        "/api/v2/system/config", json={"max_task_attempts": 5, "auto_rl": {"min_samples": 50}}, headers=admin
    )
    assert updated.status_code == 200
    assert updated.json()["data"]["max_task_attempts"] == 5
    auto_rl = updated.json()["data"]["auto_rl"]
    # the one field sent changed; the others kept their defaults (a partial update merges)
    assert {k: auto_rl[k] for k in ("enabled", "success_threshold", "min_samples", "cooldown_minutes")} == {
        "enabled": True,
        "success_threshold": 0.8,
        "min_samples": 50,
        "cooldown_minutes": 60,
    }
    assert auto_rl["algorithm"] == "apo" and auto_rl["alpha"] == 0.05 and auto_rl["window"] == 50

    ctx: AppContext = app.state.ctx
    cached = await ctx.cache.get_json(cache_keys.SYSTEM_CONFIG)
    assert cached["max_task_attempts"] == 5
    # Persisted: a new context on the same database reads it back without the cache.
    other = await AppContext.create(settings)
    try:
        assert (await get_config(other, fresh=True)).max_task_attempts == 5
    finally:
        await other.close()
    await client.put(
        "/api/v2/system/config", json={"max_task_attempts": 3, "auto_rl": {"min_samples": 20}}, headers=admin
    )


async def test_maintenance_mode_pauses_non_admin_writes(client: httpx.AsyncClient, login) -> None:  # type: ignore[no-untyped-def]
    admin = await login("admin")
    developer = await login("developer")
    await client.put("/api/v2/system/config", json={"maintenance_mode": True}, headers=admin)
    try:
        blocked = await client.post("/auth/api-keys", json={"name": "k"}, headers=developer)
        assert blocked.status_code == 503 and blocked.json()["error"]["code"] == "MAINTENANCE_MODE"
        assert (await client.get("/auth/profile", headers=developer)).status_code == 200
    finally:
        await client.put("/api/v2/system/config", json={"maintenance_mode": False}, headers=admin)


async def test_metrics_exposes_spec_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/api/v2/health")
    text = (await client.get("/metrics")).text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds",
        "system_cpu_usage_percent",
        "system_memory_usage_percent",
        "system_disk_usage_percent",
        "postgres_connections_active",
        "postgres_queries_per_second",
        "redis_cache_hit_rate",
    ):
        assert f"# TYPE {name}" in text, name
    assert 'endpoint="/api/v2/health"' in text
