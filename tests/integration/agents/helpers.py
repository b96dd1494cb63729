"""Helpers of the agent and task tests: create an agent over the API, wait for a task to finish."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


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
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/api/v2/tasks/{task_id}", headers=headers)
        assert response.status_code == 200, response.text
        task = response.json()["data"]
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} still {task['status']} after {timeout}s: {task}")
        await asyncio.sleep(0.05)
