"""Per-API-key policy of the OpenAI-compatible gateway (owned by ``agentlightning.gateway``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow


class GatewayKeyPolicy(Base):
    """What one API key may do through ``/v1``: models, request rate, token budget, body size,
    upstream timeout. A column left NULL takes the deployment's ``GATEWAY_*`` default."""

    __tablename__ = "gateway_key_policies"

    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    #: Model names the key may call (exact names, or ``provider/*``); NULL: every model.
    allowed_models: Mapped[Any] = mapped_column(JSONType)
    #: ``limits`` notation, e.g. ``"60/minute"``.
    rate_limit: Mapped[str | None] = mapped_column(String(64))
    #: Tokens per ``budget_window``; 0: unlimited.
    token_budget: Mapped[int | None] = mapped_column(Integer)
    budget_window: Mapped[str | None] = mapped_column(String(16))
    max_request_bytes: Mapped[int | None] = mapped_column(Integer)
    upstream_timeout_seconds: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255))
