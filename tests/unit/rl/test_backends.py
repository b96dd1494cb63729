"""Backends end to end without a database: a child process and a local Ray cluster."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlightning.rl.backends.base import Backend, TrainingHandle
from agentlightning.rl.backends.subprocess import SubprocessBackend
from agentlightning.rl.classic.evaluation import EvaluationRequest
from agentlightning.rl.classic.runner import TrainingJob

from .helpers import tiny_config


async def _run_to_end(handle: TrainingHandle, stop_at: int | None = None, timeout: float = 120) -> list[dict]:
    updates: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not handle.done:
        assert asyncio.get_running_loop().time() < deadline, "training did not finish in time"
        batch = await handle.drain()
        updates.extend(batch)
        if stop_at is not None and any(u.get("timesteps", 0) >= stop_at for u in batch):
            await handle.request_stop()
        await asyncio.sleep(0.1)
    await handle.close()
    return updates


async def _train_stop_evaluate(backend: Backend, tmp_path: Path) -> None:
    job = TrainingJob(1, tiny_config("ppo"), str(tmp_path / "done"), report_interval_s=0.1)
    handle = await backend.launch(job)
    updates = await _run_to_end(handle)
    assert handle.outcome is not None and handle.outcome.result is not None, handle.outcome
    assert handle.outcome.result["status"] == "completed"
    checkpoints = [u for u in updates if u["type"] == "checkpoint"]
    assert all(os.path.exists(c["path"]) and c["path"].startswith(str(tmp_path)) for c in checkpoints)
    assert os.path.exists(handle.outcome.result["final_model"])
    assert any(u["type"] == "progress" for u in updates)

    evaluation = await backend.evaluate(
        EvaluationRequest(handle.outcome.result["final_model"], job.config, n_episodes=3, seed=1)
    )
    assert evaluation["n_episodes"] == 3 and evaluation["mean_reward"] > 0

    long_job = TrainingJob(
        2, tiny_config("ppo", total_timesteps=500_000), str(tmp_path / "stopped"), report_interval_s=0.1
    )
    handle = await backend.launch(long_job)
    await _run_to_end(handle, stop_at=1)
    assert handle.outcome is not None and handle.outcome.result is not None, handle.outcome
    assert handle.outcome.result["status"] == "stopped"
    assert handle.outcome.result["timesteps"] < 100_000


async def test_subprocess_backend_trains_stops_and_evaluates(tmp_path: Path) -> None:
    backend = SubprocessBackend()
    try:
        await _train_stop_evaluate(backend, tmp_path)
    finally:
        await backend.close()


async def test_subprocess_failure_and_kill_are_outcomes(tmp_path: Path) -> None:
    backend = SubprocessBackend()
    bad = TrainingJob(3, tiny_config("ppo", environment="NoSuchEnv-v0"), str(tmp_path / "bad"))
    handle = await backend.launch(bad)
    await _run_to_end(handle)
    assert handle.outcome is not None and handle.outcome.failed
    assert "NoSuchEnv" in (handle.outcome.error or "")

    handle = await backend.launch(TrainingJob(4, tiny_config("ppo", total_timesteps=500_000), str(tmp_path / "k")))
    await handle.kill()
    assert handle.outcome is not None and handle.outcome.error == "training process killed"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=1, object_store_memory=80 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


async def test_ray_backend_trains_stops_and_evaluates(local_ray: None, tmp_path: Path) -> None:
    from agentlightning.rl.backends.ray import RayBackend

    await _train_stop_evaluate(RayBackend(), tmp_path)
