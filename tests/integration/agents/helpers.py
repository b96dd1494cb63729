"""Helpers of the agent and task tests: create an agent over the API, wait for a task to finish."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import poll_until_finished


async def create_agent(client: httpx.AsyncClient, headers: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
    """Create an agent through the API (type ``test_agent`` unless given)."""
    payload = {"name": name, **body}
    if "template" not in body:
        payload.setdefault("type", "test_agent")
    response = await client.post("/api/v2/agents", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def wait_for_task(
    client: httpx.AsyncClient, headers: dict[str, str], task_id: int, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll a task until it is finished."""
    finished = ("completed", "failed", "cancelled")
    return await poll_until_finished(
        client, headers, f"/api/v2/tasks/{task_id}", finished, timeout, 0.05, f"task {task_id}"
    )
