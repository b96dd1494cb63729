"""Writing and reading the audit log. This module is the only writer of ``audit_log``.

An entry is added in the *caller's* transaction (:func:`add_entry`), so a change and its audit
entry commit together or not at all. The request id is the current request's (``X-Request-ID``),
read without importing the API layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agentlightning.core.context import AppContext
from agentlightning.observability.request_context import current_request_id
from agentlightning.storage.models import AuditEntry
from agentlightning.storage.types import utcnow
from agentlightning.vocabulary import AuditAction

#: The actor name of changes made from the command line (no logged-in user).
CLI_ACTOR = "cli"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a logged-in user (id and name) or the command line."""

    name: str
    user_id: int | None = None


def add_entry(
    session: AsyncSession,
    actor: Actor,
    action: AuditAction,
    *,
    target_type: str,
    target: str,
    target_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to ``session`` (committed with the caller's change)."""
    entry = AuditEntry(
        actor_id=actor.user_id,
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target=target,
        details=dict(details or {}),
        request_id=current_request_id(),
        created_at=utcnow(),
    )
    session.add(entry)
    return entry


def _public(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor": entry.actor,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "target": entry.target,
        "details": entry.details or {},
        "request_id": entry.request_id,
        "created_at": entry.created_at,
    }


async def list_entries(
    ctx: AppContext,
    *,
    action: AuditAction | None = None,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: int | None = None,
    page: int = 1,
    page_size: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """Entries matching the filters, newest first, one page at a time, with the total count."""
    conditions = []
    if action is not None:
        conditions.append(AuditEntry.action == action)
    if actor is not None:
        conditions.append(AuditEntry.actor == actor)
    if target_type is not None:
        conditions.append(AuditEntry.target_type == target_type)
    if target_id is not None:
        conditions.append(AuditEntry.target_id == target_id)
    async with ctx.db.session() as session:
        total = int(await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0)
        rows = await session.scalars(
            select(AuditEntry)
            .where(*conditions)
            .order_by(AuditEntry.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
        return [_public(entry) for entry in rows.all()], total
