"""Workflows: versioned DAG definitions, their runs and the state of each step of a run
(owned by ``agentlightning.workflows``; migration 0014)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agentlightning.storage.models.base import Base
from agentlightning.storage.types import JSONType, Timestamp, utcnow
from agentlightning.vocabulary import (
    WORKFLOW_RUN_STATUSES,
    WORKFLOW_STEP_KINDS,
    WORKFLOW_STEP_STATUSES,
    WORKFLOW_VISIBILITIES,
    check_sql,
)


class Workflow(Base):
    """A named workflow; its definition lives in versions (an update adds one)."""

    __tablename__ = "workflows"
    __table_args__ = (CheckConstraint(check_sql("visibility", WORKFLOW_VISIBILITIES), name="visibility"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(20), nullable=False, default="private", server_default="private")
    #: The newest version number (runs started now use it).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WorkflowVersion(Base):
    """One immutable version of a workflow's definition (runs keep the version they started with)."""

    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WorkflowRun(Base):
    """One execution of a workflow version: durable state the engine advances under a lease."""

    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("idx_workflow_runs_workflow", "workflow_id", "id"),
        Index("idx_workflow_runs_active", "status", "lease_expires_at"),
        Index("idx_workflow_runs_owner", "owner"),
        Index("idx_workflow_runs_parent", "parent_run_id"),
        CheckConstraint(check_sql("status", WORKFLOW_RUN_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_versions.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending", server_default="pending")
    input: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    output: Mapped[Any] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    #: The user the run belongs to (its tasks are theirs; visibility like tasks).
    owner: Mapped[str | None] = mapped_column(String(255))
    #: A sub-workflow run: the run and step row that started it, and its nesting depth.
    parent_run_id: Mapped[int | None] = mapped_column(Integer)
    parent_step_id: Mapped[int | None] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    #: Unique per start request: ``wf:{run}:{step}:{attempt}`` for sub-workflows (created once).
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: The engine instance advancing the run, until when, and when it must look again at the latest.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    wake_at: Mapped[datetime | None] = mapped_column(Timestamp)
    rollout_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WorkflowStep(Base):
    """The state of one step of a run (``item`` -1), or of one item of a fan-out step (0..n-1)."""

    __tablename__ = "workflow_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", "item", name="uq_workflow_steps_run_step_item"),
        Index("idx_workflow_steps_task", "task_id"),
        CheckConstraint(check_sql("status", WORKFLOW_STEP_STATUSES), name="status"),
        CheckConstraint(check_sql("kind", WORKFLOW_STEP_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), nullable=False)
    step_id: Mapped[str] = mapped_column(String(64), nullable=False)
    item: Mapped[int] = mapped_column(Integer, nullable=False, default=-1, server_default="-1")
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    #: The current attempt's task (agent steps) or child run (workflow steps).
    task_id: Mapped[int | None] = mapped_column(Integer)
    child_run_id: Mapped[int | None] = mapped_column(Integer)
    output: Mapped[Any] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    #: When a retry may start, and when the running attempt times out.
    not_before: Mapped[datetime | None] = mapped_column(Timestamp)
    deadline_at: Mapped[datetime | None] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
