"""What a plain ``user`` tries against the typed API: filters, broken bodies, the second request shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.helpers import unique


async def test_status_filters_accept_only_the_vocabulary(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    user = await login("user")
    for path, value in (
        ("/api/v2/tasks", "pending' OR '1'='1"),
        ("/api/v2/tasks", "PENDING"),
        ("/api/v2/agents", "active;DROP TABLE agents"),
    ):
        response = await client.get(path, params={"status": value}, headers=user)
        assert response.status_code == 422, (path, value, response.text)
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["details"]["errors"][0]["field"] == "query.status"
        assert value not in response.text  # the input is not echoed back
    priority = await client.get("/api/v2/tasks", params={"priority": "urgent"}, headers=user)
    assert priority.status_code == 422


async def test_broken_json_reveals_nothing_but_where(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    user = await login("user")
    secret = "s3cr3t-" + unique("x")
    body = ('{"task": "' + secret + '", "agent_type": "data_agent",,}').encode()
    response = await client.post(
        "/api/v2/agents/assign", content=body, headers={**user, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_JSON"
    assert secret not in response.text
    deep = ("[" * 5000 + "]" * 4999).encode()  # unbalanced and deep: still a clean 400, not a 500
    response = await client.post(
        "/api/v2/agents/assign", content=deep, headers={**user, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_a_user_cannot_create_experiments_in_either_shape(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    user = await login("user")
    row = {"name": unique("row"), "algorithm": "ppo", "config": {"environment": "CartPole-v1", "total_timesteps": 64}}
    flat = {"name": unique("flat"), "algorithm": "ppo", "environment": "CartPole-v1", "total_timesteps": 64}
    for body in (row, flat):
        response = await client.post("/api/v2/rl/experiments", json=body, headers=user)
        assert response.status_code == 403, response.text


async def test_the_row_shape_cannot_smuggle_a_custom_environment(
    client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    """``custom_env`` is the platform's to set: inside ``config`` it is replaced like in the flat shape."""
    developer = await login("developer")
    smuggled = {"env_id": "CartPole-v1", "entry_point": "os:system", "kwargs": {"command": "touch /tmp/pwned"}}
    body = {
        "name": unique("smuggle"),
        "algorithm": "ppo",
        "config": {"environment": "CartPole-v1", "total_timesteps": 64, "custom_env": smuggled},
    }
    response = await client.post("/api/v2/rl/experiments", json=body, headers=developer)
    assert response.status_code == 201, response.text
    experiment = response.json()["data"]
    assert experiment["config"]["custom_env"] is None
    await client.post(f"/api/v2/rl/experiments/{experiment['id']}/stop", headers=developer)
