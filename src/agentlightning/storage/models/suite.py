"""The built-in verifiable suite's table ``verifiable_tasks`` (owned by ``agentlightning.rl.suite``).

Each row is one task with a machine-checkable answer (a verifier spec of
``agentlightning.rollouts.verifiers``), in the ``train`` or ``heldout`` split of a suite
(migration ``0016_verifiable_tasks``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow
from agentlightning.vocabulary import SUITE_SPLITS, check_sql


class SuiteTask(Base):
    """One verifiable task of a suite (stable id such as ``arith-0042``)."""

    __tablename__ = "verifiable_tasks"
    __table_args__ = (
        Index("idx_verifiable_tasks_suite_split", "suite", "split", "task_type"),
        CheckConstraint(check_sql("split", SUITE_SPLITS), name="split"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    suite: Mapped[str] = mapped_column(String(64), nullable=False, default="builtin")
    split: Mapped[str] = mapped_column(String(16), nullable=False)
    task_type: Mapped[str] = mapped_column(String(32), nullable=False)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    verifier: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    #: The starter agent type that fits the task (``math_agent``, ``data_agent``, ...).
    agent_type: Mapped[str | None] = mapped_column(String(50))
    #: A reference answer the verifier accepts (never shown to the agent; for checks and docs).
    reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
