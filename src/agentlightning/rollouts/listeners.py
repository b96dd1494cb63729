"""Rollout listeners: in-process callbacks told, after the commit, about every stored reward
(:class:`RewardEvent`) and about every ingested rollout that came to carry a ``variant`` in its
metadata together with an agent (:class:`VariantEvent`).

The bandit optimiser learns online from the first and counts the pulls of variants chosen outside
the platform's runtime (by the SDK) from the second; Auto-RL may watch rewards. A listener's error
is logged and never reaches the writer.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RewardEvent",
    "RewardListener",
    "VariantEvent",
    "VariantListener",
    "notify_reward_listeners",
    "notify_variant_listeners",
    "register_reward_listener",
    "register_variant_listener",
    "unregister_reward_listener",
    "unregister_variant_listener",
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
#: Each listener with the scope it listens to (a weak reference to an ``AppContext``), or ``None``
#: for every reward of the process.  A process may hold several contexts at once (tests, CLI
#: commands next to a server), each with its own database: a listener hears only its own.
_LISTENERS: list[tuple[RewardListener, weakref.ref[Any] | None]] = []


def register_reward_listener(fn: RewardListener, scope: object | None = None) -> RewardListener:
    """Call ``fn`` with every reward stored from now on in this process, or only with those stored
    through ``scope`` (the ``AppContext`` whose writers notify it) when given."""
    if all(existing is not fn for existing, _ in _LISTENERS):
        _LISTENERS.append((fn, None if scope is None else weakref.ref(scope)))
    return fn


def unregister_reward_listener(fn: RewardListener) -> None:
    """Stop calling ``fn`` (no error when it was not registered)."""
    _LISTENERS[:] = [(existing, scope) for existing, scope in _LISTENERS if existing is not fn]


async def notify_reward_listeners(events: Iterable[RewardEvent], scope: object | None = None) -> None:
    """Pass each event to the listeners of ``scope`` (the context that stored it) and to the
    process-wide ones, in order; errors are logged, never raised."""
    if not _LISTENERS:
        return
    listeners = [fn for fn, ref in _LISTENERS if ref is None or (scope is not None and ref() is scope)]
    for event in events:
        for fn in listeners:
            try:
                await fn(event)
            except Exception:  # noqa: BLE001 - a listener never fails the reward's writer
                log.exception("reward listener %r failed for rollout %s", fn, event.rollout_id)


@dataclass(frozen=True, slots=True)
class VariantEvent:
    """An ingested rollout that now carries both an agent and ``metadata["variant"]`` (told once per
    rollout: when it is created so, or when an update adds the missing one)."""

    rollout_id: str
    agent_id: int
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


VariantListener = Callable[[VariantEvent], Awaitable[None]]
_VARIANT_LISTENERS: list[tuple[VariantListener, weakref.ref[Any] | None]] = []


def register_variant_listener(fn: VariantListener, scope: object | None = None) -> VariantListener:
    """Call ``fn`` with every :class:`VariantEvent` of ``scope`` (or of the process)."""
    if all(existing is not fn for existing, _ in _VARIANT_LISTENERS):
        _VARIANT_LISTENERS.append((fn, None if scope is None else weakref.ref(scope)))
    return fn


def unregister_variant_listener(fn: VariantListener) -> None:
    """Stop calling ``fn`` (no error when it was not registered)."""
    _VARIANT_LISTENERS[:] = [(existing, scope) for existing, scope in _VARIANT_LISTENERS if existing is not fn]


async def notify_variant_listeners(events: Iterable[VariantEvent], scope: object | None = None) -> None:
    """Pass each event to the variant listeners of ``scope`` and the process-wide ones; errors are
    logged, never raised."""
    if not _VARIANT_LISTENERS:
        return
    listeners = [fn for fn, ref in _VARIANT_LISTENERS if ref is None or (scope is not None and ref() is scope)]
    for event in events:
        for fn in listeners:
            try:
                await fn(event)
            except Exception:  # noqa: BLE001 - a listener never fails the rollout's writer
                log.exception("variant listener %r failed for rollout %s", fn, event.rollout_id)
