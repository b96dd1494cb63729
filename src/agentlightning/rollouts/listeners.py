"""Reward listeners: in-process callbacks told about every stored reward, after its commit.

The bandit optimiser learns online from them; Auto-RL may watch them.  A listener's error is
logged and never reaches the writer of the reward.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RewardEvent",
    "RewardListener",
    "notify_reward_listeners",
    "register_reward_listener",
    "unregister_reward_listener",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RewardEvent:
    """One stored reward, with the rollout it belongs to (``metadata`` is the rollout's)."""

    rollout_id: str
    agent_id: int | None
    task_id: int | None
    value: float
    source: str
    span_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


RewardListener = Callable[[RewardEvent], Awaitable[None]]
_LISTENERS: list[RewardListener] = []


def register_reward_listener(fn: RewardListener) -> RewardListener:
    """Call ``fn`` with every reward stored from now on in this process (usable as a decorator)."""
    if fn not in _LISTENERS:
        _LISTENERS.append(fn)
    return fn


def unregister_reward_listener(fn: RewardListener) -> None:
    """Stop calling ``fn`` (no error when it was not registered)."""
    if fn in _LISTENERS:
        _LISTENERS.remove(fn)


async def notify_reward_listeners(events: Iterable[RewardEvent]) -> None:
    """Pass each event to every listener, in order; errors are logged, never raised."""
    if not _LISTENERS:
        return
    for event in events:
        for fn in list(_LISTENERS):
            try:
                await fn(event)
            except Exception:  # noqa: BLE001 - a listener never fails the reward's writer
                log.exception("reward listener %r failed for rollout %s", fn, event.rollout_id)
