"""Public shapes of the audit log (``GET /api/v2/admin/audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agentlightning.vocabulary import AuditAction


class AuditEntryPublic(BaseModel):
    """One administrative change."""

    id: int
    actor: str = Field(description="username of who made the change ('cli' for the command line)")
    actor_id: int | None = None
    action: AuditAction
    target_type: str = Field(description="what kind of thing changed, e.g. 'user'")
    target_id: int | None = None
    target: str = Field(description="the changed thing's name, e.g. the username")
    details: dict[str, Any] = Field(default_factory=dict, description="e.g. {'from': 'user', 'to': 'developer'}")
    request_id: str | None = Field(default=None, description="the X-Request-ID of the request that made it")
    created_at: datetime


class AuditPage(BaseModel):
    """A page of audit entries, newest first."""

    items: list[AuditEntryPublic]
    total: int
    page: int
    page_size: int
