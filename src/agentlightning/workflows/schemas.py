"""Public models of the workflow endpoints (request bodies are in :mod:`agentlightning.workflows.spec`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentlightning.validation import JsonObject
from agentlightning.vocabulary import WorkflowRunStatus, WorkflowStepKind, WorkflowStepStatus, WorkflowVisibility


class WorkflowPublic(BaseModel):
    """A workflow with its current definition."""

    id: int
    name: str
    description: str | None = None
    visibility: WorkflowVisibility
    version: int
    definition: dict[str, Any]
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WorkflowPage(BaseModel):
    """A page of workflows."""

    items: list[WorkflowPublic]
    total: int
    page: int
    page_size: int


class WorkflowDeleted(BaseModel):
    """What deleting a workflow did."""

    id: int
    name: str
    deleted: bool
    cancelled_runs: int


class ExecuteRequest(BaseModel):
    """Body of ``POST /api/v2/workflows/{id}/execute``."""

    model_config = ConfigDict(extra="forbid")

    input: JsonObject = Field(default_factory=dict, description="The run's input (``input`` in templates)")


class _StepState(BaseModel):
    """The state a step and each item of a fan-out step share: status, attempts, timing, output."""

    status: WorkflowStepStatus
    attempts: int
    task_id: int | None = None
    child_run_id: int | None = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None


class StepItemPublic(_StepState):
    """One item of a fan-out step."""

    item: int


class StepPublic(_StepState):
    """One step of a run: its state, attempts, timing and output (fan-out items under ``items``)."""

    step_id: str
    kind: WorkflowStepKind
    items: list[StepItemPublic] = Field(default_factory=list)


class WorkflowRunPublic(BaseModel):
    """A run of a workflow version with every step's state."""

    id: int
    run_id: int
    workflow_id: int
    workflow_name: str | None = None
    version: int
    status: WorkflowRunStatus
    input: dict[str, Any]
    output: Any = None
    error: str | None = None
    owner: str | None = None
    parent_run_id: int | None = None
    rollout_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    steps: list[StepPublic] = Field(default_factory=list)


class WorkflowRunPage(BaseModel):
    """A page of runs (without their steps)."""

    items: list[WorkflowRunPublic]
    total: int
    page: int
    page_size: int
