"""Subscription filters of the ``/ws/agents`` WebSocket: which events a client wants and may see.

A client subscribes by agent id, name or type (the spec's example subscribes with
``"agent_id": "data_agent"``, a name/type) and a list of event names.  Events that carry only an
agent id (``training_update``) are matched by name or type through the agent's labels, which the
connection looks up.  :func:`visible` applies REST's visibility: a principal without
``agent:write`` sees only events of its own tasks (or tasks with no owner), and training events
need ``rl:read``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

TASK_EVENTS = ("task_created", "task_started", "task_completed", "task_failed", "task_cancelled")
WORKFLOW_EVENTS = (
    "workflow_started",
    "step_completed",
    "step_failed",
    "workflow_completed",
    "workflow_failed",
    "workflow_cancelled",
)
EVENT_NAMES = (*TASK_EVENTS, "training_update", *WORKFLOW_EVENTS)
_ids = itertools.count(1)


@dataclass(slots=True)
class Subscription:
    """One ``subscribe`` request of a connection."""

    selector: str | None
    events: frozenset[str]
    id: str = field(default_factory=lambda: f"sub_{next(_ids)}")

    def matches(self, event: dict[str, Any], labels: tuple[str | None, str | None] | None = None) -> bool:
        """Whether ``event`` (the bus shape: topic, event, data) is wanted.

        ``labels`` is the event's agent ``(name, type)`` when the event itself lacks them.
        """
        if event.get("event") not in self.events:
            return False
        if self.selector is None:
            return True
        data = event.get("data") or {}
        if event.get("topic") == "workflows":  # by workflow id or name
            return self.selector in (str(data.get("workflow_id")), data.get("workflow_name"))
        if self.selector.isdigit():
            return str(data.get("agent_id")) == self.selector
        name, kind = data.get("agent_name"), data.get("agent_type")
        if labels is not None:
            name, kind = name or labels[0], kind or labels[1]
        return self.selector in (name, kind, str(data.get("agent_id")))

    def describe(self) -> dict[str, Any]:
        """What the client is told it subscribed to."""
        return {"subscription_id": self.id, "agent": self.selector, "events": sorted(self.events)}


class SubscriptionError(ValueError):
    """A malformed subscribe request; ``code`` is sent to the client."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


def parse_subscribe(message: dict[str, Any]) -> tuple[str | None, frozenset[str]]:
    """The selector and event set of a ``subscribe`` message."""
    selector: Any = None
    for key in ("agent_id", "agent", "agent_name", "agent_type"):
        if message.get(key) not in (None, ""):
            selector = message[key]
            break
    if selector is not None and not isinstance(selector, (str, int)):
        raise SubscriptionError("VALIDATION_ERROR", "agent_id must be an id, a name or a type")
    events = message.get("events") or list(EVENT_NAMES)
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list):
        raise SubscriptionError("VALIDATION_ERROR", "events must be a list of event names")
    unknown = sorted(set(map(str, events)) - set(EVENT_NAMES))
    if unknown:
        raise SubscriptionError(
            "VALIDATION_ERROR", f"Unknown events: {', '.join(unknown)}", {"available_events": list(EVENT_NAMES)}
        )
    return (str(selector) if selector is not None else None), frozenset(map(str, events))


def needs_labels(event: dict[str, Any]) -> bool:
    """Whether ``event`` names its agent only by id (its name and type must be looked up)."""
    data = event.get("data") or {}
    return data.get("agent_id") is not None and not (data.get("agent_name") and data.get("agent_type"))


def visible(event: dict[str, Any], username: str, can: Any) -> bool:
    """Whether a principal (``username``, permission check ``can``) may receive ``event``.

    The same rule as ``GET /api/v2/tasks/{id}``: with ``agent:write`` every task, otherwise only
    the principal's own tasks and tasks with no recorded owner.  Training events need ``rl:read``;
    workflow events go to the run's owner and to holders of ``workflow:write``.
    """
    if event.get("topic") == "training":
        return bool(can("rl:read"))
    if event.get("topic") == "workflows":  # like GET /api/v2/workflow-runs/{id}: own runs, or workflow:write
        return event.get("owner") == username or bool(can("workflow:write"))
    if event.get("topic") != "tasks":
        return False
    owner = event.get("owner")
    return owner is None or owner == username or bool(can("agent:write"))


def parse_last_event_id(value: Any) -> int | None:
    """A resume cursor (``last_event_id``) from a message or query string; None when absent."""
    if value in (None, ""):
        return None
    try:
        parsed = int(value)
    except (TypeError, ValueError) as exc:
        raise SubscriptionError("VALIDATION_ERROR", "last_event_id must be an integer event id") from exc
    if parsed < 0:
        raise SubscriptionError("VALIDATION_ERROR", "last_event_id must be an integer event id")
    return parsed
