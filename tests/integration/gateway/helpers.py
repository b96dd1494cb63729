"""Helpers of the gateway tests: API keys, the recorder's flush, requests the upstream saw."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from agentlightning.gateway.service import gateway_for
from tests.fake_llm_server import FakeLLMServer


async def new_key(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, str]:
    """A fresh API key of the user behind ``headers``: (id, plaintext)."""
    response = await client.post("/auth/api-keys", json={"name": "gateway"}, headers=headers)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return int(data["id"]), str(data["key"])


async def flush(app: FastAPI) -> None:
    """Wait until every call so far is recorded (spans written, tokens charged)."""
    await gateway_for(app.state.ctx).recorder.flush()


def received(llm: FakeLLMServer, marker: str) -> list[dict[str, Any]]:
    """The request bodies the upstream received whose messages mention ``marker``."""
    return [body for body in list(llm.requests) if marker in str(body.get("messages"))]


async def rollout_of(app: FastAPI, rollout_id: str) -> dict[str, Any]:
    """A rollout with its spans and rewards, as the rollouts service stores it."""
    from agentlightning.rollouts.service import RolloutService

    return dict(await RolloutService(app.state.ctx).get(None, rollout_id))
