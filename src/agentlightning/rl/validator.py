"""Experiment validation in a child process, with a timeout: never on the API's event loop.

:func:`~agentlightning.rl.config.validate_config` creates the environment and builds the model
once (a dry run). That is CPU work under the GIL (Python environments, torch's set-up), and a
heavy configuration used to stall every client of the API process while a thread ran it. Here it
runs in a pool of spawned worker processes (:mod:`pebble`): the event loop only awaits a future,
and a validation past its timeout has its worker killed and is reported as a problem.

The cheap checks (:func:`~agentlightning.rl.config.check_resources`) run in the caller first,
so an oversized request is refused without starting anything.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pebble import ProcessExpired, ProcessPool

from agentlightning.rl.classic.envs import CustomEnvSpec
from agentlightning.rl.config import (
    ConfigError,
    ExperimentConfig,
    Problem,
    ResourceLimits,
    ValidatedConfig,
    check_resources,
    validate_config,
)

__all__ = ["validate_off_loop", "shutdown_pool"]

#: Worker processes validating at once (each holds torch once warmed).
POOL_WORKERS = 2

_pool: ProcessPool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ProcessPool:
    global _pool
    with _pool_lock:
        if _pool is None or not _pool.active:
            # spawn: the API process runs threads (asyncio, thread pools), which fork does not copy safely.
            _pool = ProcessPool(max_workers=POOL_WORKERS, context=multiprocessing.get_context("spawn"))
        return _pool


def shutdown_pool() -> None:
    """Stop the validation workers (at interpreter exit, or in tests)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.stop()
            _pool.join(timeout=10)
            _pool = None


atexit.register(shutdown_pool)


def _run(
    config: dict[str, Any], custom: dict[str, dict[str, Any]], limits: dict[str, int]
) -> tuple[bool, Any, dict[str, str]]:
    """In the worker: validate; return ``(ok, config dump | problem dicts, spaces)`` (plain data pickles)."""
    try:
        checked = validate_config(
            ExperimentConfig.model_validate(config),
            {k: CustomEnvSpec.from_dict(v) for k, v in custom.items()},
            limits=ResourceLimits(**limits),
        )
    except ConfigError as exc:
        return False, [p.to_dict() for p in exc.problems], {}
    return True, checked.config.model_dump(mode="json"), checked.spaces


async def validate_off_loop(
    config: ExperimentConfig,
    custom_envs: Mapping[str, CustomEnvSpec],
    limits: ResourceLimits,
    timeout: float,
) -> ValidatedConfig:
    """:func:`validate_config` in a worker process; raise :class:`ConfigError` (also on timeout)."""
    problems = check_resources(config, limits)
    if problems:
        raise ConfigError(problems)
    future = _get_pool().schedule(
        _run,
        args=(
            config.model_dump(mode="json"),
            {k: v.to_dict() for k, v in custom_envs.items()},
            dict(limits.__dict__),
        ),
        timeout=timeout,
    )
    try:
        ok, payload, spaces = await asyncio.wrap_future(future)
    except FutureTimeout:
        raise ConfigError(
            [
                Problem(
                    "environment",
                    f"building the environment and model took longer than {timeout:g} s; use a smaller configuration",
                )
            ]
        ) from None
    except ProcessExpired as exc:  # the worker died (out of memory, a crash in native code)
        raise ConfigError(
            [Problem("hyperparameters", f"building the model crashed the validation worker (exit code {exc.exitcode})")]
        ) from None
    except asyncio.CancelledError:
        future.cancel()  # the caller went away: pebble kills the worker running it
        raise
    if not ok:
        raise ConfigError([Problem(p["field"], p["message"]) for p in payload])
    return ValidatedConfig(config=ExperimentConfig.model_validate(payload), spaces=spaces)
