"""Restart recovery: a server that dies mid-training leaves ``running`` rows behind; the next
manager resumes them from their last checkpoint, or fails them with the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from agentlightning.core.context import AppContext
from agentlightning.rl.manager import ExperimentManager
from tests.helpers import unique

from .helpers import retire_leftovers, tiny, wait_for

API = "/api/v2/rl/experiments"


async def _crash(manager: ExperimentManager) -> None:
    """What a killed server leaves: no graceful stop, rows stay ``running`` with its lease."""
    assert manager._task is not None
    manager._task.cancel()
    await asyncio.gather(manager._task, return_exceptions=True)
    for handle in list(manager.handles.values()):
        await handle.kill()
    manager.handles.clear()


async def test_restart_resumes_from_checkpoint_or_fails_with_reason(
    client: httpx.AsyncClient, developer: dict[str, str], ctx: AppContext
) -> None:
    await retire_leftovers(ctx)
    first = ExperimentManager(ctx.settings)
    await first.start(ctx)
    long: dict[str, Any] = {"total_timesteps": 2_000_000}
    with_checkpoints = (
        await client.post(API, json=tiny("ppo", unique("resume"), checkpoint_freq=512, **long), headers=developer)
    ).json()["data"]["id"]
    without = (
        await client.post(API, json=tiny("ppo", unique("nockpt"), checkpoint_freq=0, **long), headers=developer)
    ).json()["data"]["id"]
    crashed = await wait_for(client, developer, with_checkpoints, lambda e: len(e["checkpoints"]) >= 1)
    await wait_for(client, developer, without, lambda e: e["status"] == "running")
    await _crash(first)
    checkpoint_steps = max(c["timesteps"] for c in crashed["checkpoints"])
    before = (
        await client.get(f"{API}/{with_checkpoints}/metrics", params={"limit": 10_000}, headers=developer)
    ).json()["data"]
    assert (await client.get(f"{API}/{without}", headers=developer)).json()["data"]["status"] == "running"

    # A new server: its manager sees leases of a process that is gone and recovers at once.
    second = ExperimentManager(ctx.settings)
    await second.start(ctx)
    ctx.services["rl"] = second
    try:
        failed = await wait_for(client, developer, without, lambda e: e["status"] == "failed")
        assert "no checkpoint to resume from" in failed["error"]
        assert "stopped renewing its lease" in failed["error"]

        resumed = await wait_for(
            client, developer, with_checkpoints, lambda e: e["status"] == "running" and e["attempts"] == 2
        )
        # The row still shows the crashed run's last progress, so wait for the resumed run's own points.
        after: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 120
        while not after and asyncio.get_running_loop().time() < deadline:
            after = (
                await client.get(
                    f"{API}/{with_checkpoints}/metrics",
                    params={"kind": "progress", "after_id": before["next_after_id"]},
                    headers=developer,
                )
            ).json()["data"]["items"]
            await asyncio.sleep(0.2)
        assert after and min(p["timesteps"] for p in after) >= checkpoint_steps, "continued, not restarted"
        assert resumed["start_time"] == crashed["start_time"]

        await client.post(f"{API}/{with_checkpoints}/stop", headers=developer)
        done = await wait_for(client, developer, with_checkpoints, lambda e: e["status"] == "stopped", timeout=30)
        assert done["error"] is None
    finally:
        ctx.services.pop("rl", None)
        await second.stop()
        await retire_leftovers(ctx)


async def test_graceful_shutdown_requeues_then_next_manager_resumes(
    client: httpx.AsyncClient, developer: dict[str, str], ctx: AppContext
) -> None:
    await retire_leftovers(ctx)
    first = ExperimentManager(ctx.settings)
    await first.start(ctx)
    experiment_id = (
        await client.post(
            API, json=tiny("ppo", unique("shutdown"), total_timesteps=2_000_000, checkpoint_freq=0), headers=developer
        )
    ).json()["data"]["id"]
    await wait_for(client, developer, experiment_id, lambda e: e["metrics"]["timesteps"] > 0)
    await first.stop()  # the server shuts down: the run saves a final model and goes back to the queue
    queued = (await client.get(f"{API}/{experiment_id}", headers=developer)).json()["data"]
    assert queued["status"] == "queued", queued
    saved = max(c["timesteps"] for c in queued["checkpoints"])

    second = ExperimentManager(ctx.settings)
    await second.start(ctx)
    try:
        await wait_for(
            client, developer, experiment_id, lambda e: e["status"] == "running" and e["metrics"]["timesteps"] > saved
        )
        await client.post(f"{API}/{experiment_id}/stop", headers=developer)
        await wait_for(client, developer, experiment_id, lambda e: e["status"] == "stopped", timeout=30)
    finally:
        await second.stop()
        await retire_leftovers(ctx)
