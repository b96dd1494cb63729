"""The workflow engine: a background service that advances runs, durably, over our own tables.

Every run and every step is a row; every transition is a conditional ``UPDATE`` (``WHERE status =
<expected> AND attempts = <n>``), so replaying a transition after a crash, or two engines racing on
one run, changes nothing twice.  An engine holds a *lease* on the runs it advances (renewed every
poll); a run whose engine died is taken over once its lease expires, by another server or by the
same one after a restart, and resumes from its rows: finished steps are never run again.

* **Agent steps** are tasks of the task queue (``TaskScheduler.assign``), so they run on the worker
  pool with its leases and retries.  Each attempt's task is created with the idempotency key
  ``wf:{run}:{step}:{attempt}``: if the engine dies between creating the task and recording it, the
  retry finds the same task instead of queueing a second one.
* **Tool steps** call the tool registry as the agent runtime does (schema check, timeout, the
  python tool's sandbox) in the engine's process; a call cut short by a crash runs again on resume.
* **Condition steps** evaluate a sandboxed Jinja2 expression; **workflow steps** start a child run
  (idempotent the same way) and finish with it.
* **Wake-ups**: task events (``task_completed|failed|cancelled``) and ``workflow_*`` events from the
  event bus wake the runs concerned at once; each run also has a ``wake_at`` (its next timeout or
  retry, at the latest a safety interval), checked every poll, so a missed event only delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.agents.tools.base import ToolContext
from agentlightning.agents.tools.registry import default_registry, load_tool_modules
from agentlightning.errors import AppError
from agentlightning.observability.metrics import WORKFLOW_RUNS, WORKFLOW_STEP_SCHEDULING
from agentlightning.settings import Settings
from agentlightning.storage.db import affected_rows
from agentlightning.storage.events import Event
from agentlightning.storage.models import Task, Workflow, WorkflowRun, WorkflowStep, WorkflowVersion
from agentlightning.storage.types import as_utc, utcnow
from agentlightning.vocabulary import TASK_TERMINAL, WORKFLOW_RUN_ACTIVE, WORKFLOW_RUN_TERMINAL, WORKFLOW_STEP_TERMINAL
from agentlightning.workflows import templates
from agentlightning.workflows.service import (
    MAX_DEPTH,
    TOPIC,
    WorkflowService,
    cancel_run_tree,
    finish_run_rollout,
    record_run_event,
    start_run_rollout,
)
from agentlightning.workflows.spec import (
    MAX_ITEMS,
    AgentStepDef,
    ConditionStepDef,
    SubWorkflowStepDef,
    ToolStepDef,
    WorkflowDefinition,
    branch_owner,
    dependencies,
    failure_handlers,
    load_definition,
)

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

log = logging.getLogger(__name__)

#: The engine looks at every run it holds at least this often, whatever the events say.
SAFETY_INTERVAL_S = 60.0
#: Runs one engine holds at most (claims stop there; others engines take the rest).
MAX_HELD = 5000
#: Terminal task events of unknown tasks remembered (a step's task can finish before its dispatch is recorded).
UNTRACKED_KEPT = 10_000
TASK_DONE_EVENTS = frozenset({"task_completed", "task_failed", "task_cancelled"})
RUN_DONE_EVENTS = frozenset({"workflow_completed", "workflow_failed", "workflow_cancelled"})
#: Step statuses values as variables (the vocabulary's names; see ``vocabulary.WorkflowStepStatus``).
PENDING, RUNNING, COMPLETED, FAILED, SKIPPED, CANCELLED = (
    "pending",
    "running",
    "completed",
    "failed",
    "skipped",
    "cancelled",
)


def create_engine_service(settings: Settings) -> WorkflowEngine | None:
    """``SERVICE_FACTORIES`` entry: the engine, unless ``WORKFLOW_ENGINE_ENABLED=false``."""
    return WorkflowEngine(settings) if settings.workflow_engine_enabled else None


@dataclass(slots=True)
class _Plan:
    """A version's definition with the derived graph, parsed once per engine."""

    definition: WorkflowDefinition
    steps: dict[str, Any]
    deps: dict[str, list[str]]
    branches: dict[str, tuple[str, str]]
    handlers: dict[str, str]
    workflow_name: str


def _step_key(row: WorkflowStep) -> str:
    return row.step_id if row.item < 0 else f"{row.step_id}[{row.item}]"


def _answer(result: Any) -> Any:
    """An agent step's output: the task's answer."""
    if isinstance(result, dict) and "answer" in result:
        return result["answer"]
    return result


class WorkflowEngine:
    """Advances workflow runs (a :class:`~agentlightning.core.services.BackgroundService`)."""

    name = "workflow_engine"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ctx: AppContext | None = None
        self.scheduler: TaskScheduler | None = None
        self.service: WorkflowService | None = None
        self.held: set[int] = set()
        self.task_runs: dict[int, int] = {}
        self.plans: dict[int, _Plan] = {}
        self.tools_in_flight: dict[int, asyncio.Task[None]] = {}
        #: (step row, attempt) of tool calls started by this engine (a restart forgets them).
        self.tool_attempts: set[tuple[int, int]] = set()
        self._units_of: dict[int, set[int]] = {}
        self._tasks_of: dict[int, set[int]] = {}
        #: Tasks whose terminal event arrived before this engine knew them (a very fast worker).
        self._done_untracked: OrderedDict[int, None] = OrderedDict()
        self._advancing: set[int] = set()
        self._again: set[int] = set()
        self._runners: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._claim_now = True
        self._loops: list[asyncio.Task[None]] = []
        self._gate = asyncio.Semaphore(settings.workflow_engine_concurrency)
        self._stopping = False
        self.advanced = 0
        self.last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, ctx: AppContext) -> None:
        """Subscribe to events, then claim and advance runs until stopped."""
        load_tool_modules(self.settings)
        self.ctx = ctx
        self.scheduler = TaskScheduler(ctx)
        self.service = WorkflowService(ctx)
        self._stopping = False
        ready = asyncio.Event()
        self._loops = [
            asyncio.create_task(self._listen(ready), name="workflow-engine-listen"),
            asyncio.create_task(self._main(), name="workflow-engine-main"),
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=3.0)
        log.info("workflow engine %s started", self.instance_id)

    async def stop(self) -> None:
        """Stop advancing and hand the runs back (their leases are released at once)."""
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        for task in [*self._runners, *self.tools_in_flight.values()]:
            task.cancel()
        for task in [*self._loops, *self._runners, *self.tools_in_flight.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        if self.ctx is not None:
            with contextlib.suppress(Exception):
                async with self.ctx.db.session() as s:
                    await s.execute(
                        update(WorkflowRun)
                        .where(WorkflowRun.lease_owner == self.instance_id)
                        .values(lease_owner=None, lease_expires_at=None, wake_at=utcnow())
                    )
                    await s.commit()
        self.held.clear()

    async def health(self) -> dict[str, Any]:
        """Instance id, runs held and in progress."""
        alive = bool(self._loops) and all(not loop.done() for loop in self._loops)
        return {
            "status": "ok" if alive else ("stopped" if self._stopping else "degraded"),
            "instance_id": self.instance_id,
            "runs_held": len(self.held),
            "advancing": len(self._advancing),
            "tool_calls_in_flight": len(self.tools_in_flight),
            "advanced": self.advanced,
            "last_error": self.last_error,
        }

    # --- loops -------------------------------------------------------------------------------
    async def _listen(self, ready: asyncio.Event) -> None:
        assert self.ctx is not None
        async with self.ctx.events.subscribe(durable=True) as sub:
            ready.set()
            async for event in sub:
                topic, name, data = event.get("topic"), event.get("event"), event.get("data") or {}
                if topic == "tasks" and name in TASK_DONE_EVENTS:
                    task_id = int(data.get("task_id") or 0)
                    run_id = self.task_runs.get(task_id)
                    if run_id is not None:
                        self.schedule(run_id)
                    else:  # perhaps a step's task that finished before its dispatch was recorded
                        self._done_untracked[task_id] = None
                        while len(self._done_untracked) > UNTRACKED_KEPT:
                            self._done_untracked.popitem(last=False)
                elif topic == TOPIC:
                    if name == "workflow_started":
                        self._claim_now = True
                        self._wake.set()
                    elif name in RUN_DONE_EVENTS and data.get("parent_run_id") in self.held:
                        self.schedule(int(data["parent_run_id"]))

    async def _main(self) -> None:
        poll = self.settings.workflow_poll_interval_seconds
        renew_every = max(poll, self.settings.workflow_lease_seconds / 3)
        last_take = last_renew = 0.0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)
            self._wake.clear()
            try:
                now = time.monotonic()
                if now - last_renew >= renew_every:
                    last_renew = now
                    await self._renew()
                if self._claim_now or now - last_take >= poll:
                    self._claim_now = False
                    last_take = now
                    for run_id in await self._take():
                        self.schedule(run_id)
                    for run_id in await self._due():
                        self.schedule(run_id)
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be restarting: try next round
                self.last_error = f"claim: {exc}"
                log.warning("workflow engine: claiming runs failed: %s", exc)

    def _lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.workflow_lease_seconds)

    async def _take(self) -> list[int]:
        """Lease active runs nobody holds (new ones, or those whose engine died); returns their ids."""
        assert self.ctx is not None
        room = MAX_HELD - len(self.held)
        if room <= 0:
            return []
        takeable = and_(
            WorkflowRun.status.in_(WORKFLOW_RUN_ACTIVE),
            or_(WorkflowRun.lease_owner.is_(None), WorkflowRun.lease_expires_at < utcnow()),
        )
        candidates = select(WorkflowRun.id).where(takeable).order_by(WorkflowRun.id).limit(room)
        async with self.ctx.db.session() as s:
            taken = {
                r[0]
                for r in await s.execute(
                    update(WorkflowRun)
                    .where(WorkflowRun.id.in_(candidates.scalar_subquery()), takeable)
                    .values(lease_owner=self.instance_id, lease_expires_at=self._lease_until())
                    .returning(WorkflowRun.id)
                    .execution_options(synchronize_session=False)
                )
            }
            await s.commit()
        self.held |= taken
        return sorted(taken)

    async def _renew(self) -> None:
        """Extend the leases of the runs this engine holds; forget those it no longer holds."""
        assert self.ctx is not None
        async with self.ctx.db.session() as s:
            kept = {
                r[0]
                for r in await s.execute(
                    update(WorkflowRun)
                    .where(WorkflowRun.lease_owner == self.instance_id, WorkflowRun.status.in_(WORKFLOW_RUN_ACTIVE))
                    .values(lease_expires_at=self._lease_until())
                    .returning(WorkflowRun.id)
                    .execution_options(synchronize_session=False)
                )
            }
            await s.commit()
        self.held = kept

    async def _due(self) -> list[int]:
        """Held runs whose ``wake_at`` has come (a timeout, a retry, or the safety interval)."""
        assert self.ctx is not None
        async with self.ctx.db.session() as s:
            return [
                r[0]
                for r in await s.execute(
                    select(WorkflowRun.id).where(
                        WorkflowRun.lease_owner == self.instance_id,
                        WorkflowRun.status.in_(WORKFLOW_RUN_ACTIVE),
                        WorkflowRun.wake_at <= utcnow(),
                    )
                )
            ]

    def schedule(self, run_id: int) -> None:
        """Advance ``run_id`` soon (again after the current pass, if one is under way)."""
        if self._stopping:
            return
        if run_id in self._advancing:
            self._again.add(run_id)
            return
        self._advancing.add(run_id)
        runner = asyncio.create_task(self._advance_loop(run_id), name=f"workflow-run-{run_id}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    async def _advance_loop(self, run_id: int) -> None:
        try:
            while True:
                self._again.discard(run_id)
                async with self._gate:
                    try:
                        for _ in range(100):  # each pass may make further steps ready
                            if not await self.advance(run_id):
                                break
                        self.advanced += 1
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - retried at the next wake-up
                        self.last_error = f"run {run_id}: {exc}"
                        log.exception("workflow run %s could not be advanced; retrying later", run_id)
                if run_id not in self._again:
                    return
        finally:
            self._advancing.discard(run_id)

    # --- one run -------------------------------------------------------------------------------
    async def _plan(self, run: WorkflowRun) -> _Plan:
        plan = self.plans.get(run.version_id)
        if plan is None:
            assert self.ctx is not None
            async with self.ctx.db.session() as s:
                found = (
                    await s.execute(
                        select(WorkflowVersion.definition, Workflow.name)
                        .join(Workflow, Workflow.id == WorkflowVersion.workflow_id)
                        .where(WorkflowVersion.id == run.version_id)
                    )
                ).one()
            definition = load_definition(found[0])
            plan = _Plan(
                definition=definition,
                steps={s.id: s for s in definition.steps},
                deps=dependencies(definition),
                branches=branch_owner(definition),
                handlers=failure_handlers(definition),
                workflow_name=found[1],
            )
            if len(self.plans) > 1000:
                self.plans.clear()
            self.plans[run.version_id] = plan
        return plan

    async def advance(self, run_id: int) -> bool:
        """One pass over a run: record finished attempts, dispatch ready steps, finish the run.

        Transitions update the rows in memory too, so one pass carries a run as far as it can go;
        returns True only when the run must be read again (its rows were just created).
        """
        assert self.ctx is not None
        async with self.ctx.db.session() as s:
            run = await s.get(WorkflowRun, run_id)
            if run is None or run.status not in WORKFLOW_RUN_ACTIVE or run.lease_owner != self.instance_id:
                self.held.discard(run_id)
                return False
            rows = list((await s.execute(select(WorkflowStep).where(WorkflowStep.run_id == run_id))).scalars())
            task_ids = [r.task_id for r in rows if r.status == RUNNING and r.task_id is not None]
            tasks = (
                {
                    t.id: t
                    for t in (
                        await s.execute(
                            select(Task.id, Task.status, Task.result, Task.error_message).where(Task.id.in_(task_ids))
                        )
                    ).all()
                }
                if task_ids
                else {}
            )
            child_ids = [r.child_run_id for r in rows if r.status == RUNNING and r.child_run_id is not None]
            children = (
                {
                    c.id: c
                    for c in (
                        await s.execute(
                            select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.output, WorkflowRun.error).where(
                                WorkflowRun.id.in_(child_ids)
                            )
                        )
                    ).all()
                }
                if child_ids
                else {}
            )
            s.expunge_all()
        plan = await self._plan(run)
        now = utcnow()
        if not rows:  # a run stored before its step rows (the rows are created with the run)
            await self._create_rows(run, plan)
            return True
        if run.status == PENDING:
            await self._start_run(run, plan)
            run.status = RUNNING
        aggregates = {r.step_id: r for r in rows if r.item < 0}
        items: dict[str, list[WorkflowStep]] = {}
        for r in rows:
            if r.item >= 0:
                items.setdefault(r.step_id, []).append(r)
        for task_id in task_ids:
            self._track_task(run_id, task_id)

        # 1. Running attempts: tasks, tool calls, sub-runs, deadlines.
        for r in rows:
            if r.status != RUNNING or (r.item < 0 and plan.steps[r.step_id].for_each is not None):
                continue
            step = plan.steps[r.step_id]
            late = r.deadline_at is not None and as_utc(r.deadline_at) <= now
            if isinstance(step, AgentStepDef) and r.task_id is not None:
                task = tasks.get(r.task_id)
                if task is None:
                    await self._attempt_failed(run, plan, r, "its task was deleted")
                elif task.status == COMPLETED:
                    await self._finish(run, plan, r, COMPLETED, output=_answer(task.result))
                elif task.status in TASK_TERMINAL:
                    await self._attempt_failed(run, plan, r, task.error_message or f"task {task.status}")
                elif late:
                    with contextlib.suppress(AppError):
                        assert self.scheduler is not None
                        await self.scheduler.cancel(r.task_id)
                    await self._attempt_failed(run, plan, r, f"timed out after {step.timeout_seconds:g}s")
            elif isinstance(step, ToolStepDef):
                if (r.id, r.attempts) not in self.tool_attempts:  # cut short by a restart: call again
                    self._spawn_tool(run, plan, r, aggregates, items)
            elif isinstance(step, SubWorkflowStepDef) and r.child_run_id is not None:
                child = children.get(r.child_run_id)
                if child is None:
                    await self._attempt_failed(run, plan, r, "its sub-workflow run was deleted")
                elif child.status == COMPLETED:
                    await self._finish(run, plan, r, COMPLETED, output=child.output)
                elif child.status in WORKFLOW_RUN_TERMINAL:
                    await self._attempt_failed(run, plan, r, child.error or f"sub-workflow {child.status}")
                elif late:
                    await cancel_run_tree(self.ctx, r.child_run_id, "timed out")
                    await self._attempt_failed(run, plan, r, f"timed out after {step.timeout_seconds:g}s")

        # 2. Fan-outs finish with their items; ready steps are skipped, fanned out or dispatched.
        for _ in range(len(rows) + 10):
            if await self._failed_run(run, plan, aggregates):
                return False
            changed = await self._close_fan_outs(run, plan, aggregates, items)
            changed |= await self._dispatch_ready(run, plan, aggregates, items)
            if not changed:
                break
        if await self._failed_run(run, plan, aggregates):
            return False

        # 3. Everything finished: the run's output; otherwise the next look at the latest.
        if all(a.status in WORKFLOW_STEP_TERMINAL for a in aggregates.values()):
            await self._complete_run(run, plan, aggregates)
        else:
            await self._set_wake(run, rows + [r for its in items.values() for r in its])
        return False

    async def _failed_run(self, run: WorkflowRun, plan: _Plan, aggregates: dict[str, WorkflowStep]) -> bool:
        """End the run when a step failed and nothing routes its failure."""
        for step_id, agg in aggregates.items():
            if agg.status == FAILED and plan.steps[step_id].on_failure == "fail":
                await self._end_run(run, plan, FAILED, error=f"step '{step_id}' failed: {agg.error}")
                return True
        return False

    async def _close_fan_outs(
        self, run: WorkflowRun, plan: _Plan, aggregates: dict[str, WorkflowStep], items: dict[str, list[WorkflowStep]]
    ) -> bool:
        changed = False
        for step_id, agg in aggregates.items():
            if agg.status != RUNNING or plan.steps[step_id].for_each is None:
                continue
            its = sorted(items.get(step_id, []), key=lambda r: r.item)
            expected = len((agg.output or {}).get("items", [])) if isinstance(agg.output, dict) else 0
            if len(its) < expected:  # the items' insert was cut short: add the missing ones
                items[step_id] = its + await self._insert_items(run, agg, expected, {r.item for r in its})
                changed = True
                continue
            if all(r.status in WORKFLOW_STEP_TERMINAL for r in its):
                failed = [r for r in its if r.status != COMPLETED]
                if failed:
                    error = f"item {failed[0].item}: {failed[0].error}"
                    changed |= await self._finish(run, plan, agg, FAILED, error=error)
                else:
                    changed |= await self._finish(run, plan, agg, COMPLETED, output=[r.output for r in its])
        return changed

    async def _dispatch_ready(
        self, run: WorkflowRun, plan: _Plan, aggregates: dict[str, WorkflowStep], items: dict[str, list[WorkflowStep]]
    ) -> bool:
        now = utcnow()
        changed = False
        outputs = {sid: (a.output if a.status == COMPLETED else None) for sid, a in aggregates.items()}
        for step_id, agg in aggregates.items():
            if agg.status != PENDING:
                continue
            decision = self._readiness(plan, step_id, aggregates)
            if decision is None or (agg.not_before is not None and as_utc(agg.not_before) > now):
                continue
            if decision == SKIPPED:
                changed |= await self._finish(run, plan, agg, SKIPPED, expect=PENDING)
                continue
            ready_at = self._ready_at(run, plan, step_id, aggregates)
            if plan.steps[step_id].for_each is not None:
                created = await self._fan_out(run, plan, agg, outputs)
                if created:
                    items[step_id] = created
                changed |= agg.status != PENDING
            else:
                changed |= await self._dispatch(run, plan, agg, outputs, None, ready_at)
        for step_id, its in items.items():
            agg = aggregates[step_id]
            if agg.status != RUNNING:
                continue
            values = (agg.output or {}).get("items", []) if isinstance(agg.output, dict) else []
            for r in its:
                if r.status == PENDING and (r.not_before is None or as_utc(r.not_before) <= now):
                    item = values[r.item] if r.item < len(values) else None
                    changed |= await self._dispatch(run, plan, r, outputs, item, agg.started_at)
        return changed

    def _track_task(self, run_id: int, task_id: int) -> None:
        self.task_runs[task_id] = run_id
        self._tasks_of.setdefault(run_id, set()).add(task_id)
        if self._done_untracked.pop(task_id, 0) is None:  # its event came first: look again
            self.schedule(run_id)

    def _readiness(self, plan: _Plan, step_id: str, aggregates: dict[str, WorkflowStep]) -> str | None:
        """``running`` (dispatch it), ``skipped``, or None (dependencies unfinished)."""
        deps = plan.deps[step_id]
        if any(aggregates[d].status not in WORKFLOW_STEP_TERMINAL for d in deps):
            return None
        handled = plan.handlers.get(step_id)
        if handled is not None and aggregates[handled].status != FAILED:
            return SKIPPED
        branch = plan.branches.get(step_id)
        if branch is not None:
            condition = aggregates[branch[0]]
            if condition.status != COMPLETED:
                return SKIPPED
            if ("then" if condition.output else "else") != branch[1]:
                return SKIPPED
        ordinary = [d for d in deps if d != handled and (branch is None or d != branch[0])]
        if ordinary:
            done = [
                d
                for d in ordinary
                if aggregates[d].status == COMPLETED
                or (aggregates[d].status == FAILED and plan.steps[d].on_failure == "continue")
            ]
            if not done:
                return SKIPPED
        return RUNNING

    def _ready_at(self, run: WorkflowRun, plan: _Plan, step_id: str, aggregates: dict[str, WorkflowStep]) -> Any:
        times = [as_utc(c) for d in plan.deps[step_id] if (c := aggregates[d].completed_at) is not None]
        return max(times, default=as_utc(run.started_at or run.created_at))

    def _vars(self, run: WorkflowRun, outputs: dict[str, Any], item: Any = None, index: int = -1) -> dict[str, Any]:
        values: dict[str, Any] = {"input": run.input or {}, "steps": outputs}
        if index >= 0:
            values |= {"item": item, "index": index}
        return values

    # --- transitions ---------------------------------------------------------------------------
    async def _start_run(self, run: WorkflowRun, plan: _Plan) -> None:
        """``pending`` -> ``running``, with the run's rollout (steps' task rollouts nest under it)."""
        assert self.ctx is not None
        rollout_id = await start_run_rollout(self.ctx, run, plan.workflow_name)
        async with self.ctx.db.session() as s:
            await s.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run.id, WorkflowRun.status == PENDING)
                .values(status=RUNNING, started_at=utcnow(), rollout_id=rollout_id)
            )
            await s.commit()
        run.rollout_id = rollout_id

    async def _create_rows(self, run: WorkflowRun, plan: _Plan) -> None:
        """One ``pending`` row per step (a replay after a crash finds them and inserts nothing)."""
        assert self.ctx is not None
        values = [
            {"run_id": run.id, "step_id": step.id, "item": -1, "kind": step.kind, "status": PENDING, "attempts": 0}
            for step in plan.definition.steps
        ]
        async with self.ctx.db.session() as s:
            try:
                await s.execute(insert(WorkflowStep), values)
                await s.commit()
            except IntegrityError:
                await s.rollback()

    async def _insert_items(
        self, run: WorkflowRun, agg: WorkflowStep, count: int, present: set[int]
    ) -> list[WorkflowStep]:
        """Add the item rows a crash kept from being inserted."""
        assert self.ctx is not None
        missing = [
            {"run_id": run.id, "step_id": agg.step_id, "item": i, "kind": agg.kind, "status": PENDING, "attempts": 0}
            for i in range(count)
            if i not in present
        ]
        if not missing:
            return []
        async with self.ctx.db.session() as s:
            try:
                created = list(
                    (await s.execute(insert(WorkflowStep).values(missing).returning(WorkflowStep))).scalars()
                )
                await s.commit()
            except IntegrityError:
                await s.rollback()
                return []
        return created

    async def _fan_out(
        self, run: WorkflowRun, plan: _Plan, agg: WorkflowStep, outputs: dict[str, Any]
    ) -> list[WorkflowStep]:
        """Evaluate ``for_each`` and create one item row per element (the step is then ``running``);
        returns the item rows (none when the step finished at once or another pass got there first)."""
        assert self.ctx is not None
        step = plan.steps[agg.step_id]
        assert step.for_each is not None
        try:
            values = templates.evaluate(step.for_each, self._vars(run, outputs))
        except Exception as exc:  # noqa: BLE001 - a template error fails the step, not the engine
            await self._finish(run, plan, agg, FAILED, error=f"for_each: {exc}", expect=PENDING)
            return []
        problem = None
        if not isinstance(values, list):
            problem = f"for_each gave {type(values).__name__}, not a list"
        elif len(values) > MAX_ITEMS:
            problem = f"for_each gave {len(values)} items; at most {MAX_ITEMS}"
        if problem is not None:
            await self._finish(run, plan, agg, FAILED, error=problem, expect=PENDING)
            return []
        if not values:
            await self._finish(run, plan, agg, COMPLETED, output=[], expect=PENDING)
            return []
        now = utcnow()
        async with self.ctx.db.session() as s:
            res = await s.execute(
                update(WorkflowStep)
                .where(WorkflowStep.id == agg.id, WorkflowStep.status == PENDING)
                .values(status=RUNNING, attempts=1, started_at=now, output={"items": values})
            )
            if not affected_rows(res):
                await s.rollback()
                return []
            created = list(
                (
                    await s.execute(
                        insert(WorkflowStep)
                        .values(
                            [
                                {
                                    "run_id": run.id,
                                    "step_id": agg.step_id,
                                    "item": i,
                                    "kind": agg.kind,
                                    "status": PENDING,
                                    "attempts": 0,
                                }
                                for i in range(len(values))
                            ]
                        )
                        .returning(WorkflowStep)
                    )
                ).scalars()
            )
            await s.commit()
        agg.status, agg.attempts, agg.started_at, agg.output = RUNNING, 1, now, {"items": values}
        return created

    async def _dispatch(
        self,
        run: WorkflowRun,
        plan: _Plan,
        unit: WorkflowStep,
        outputs: dict[str, Any],
        item: Any,
        ready_at: Any,
    ) -> bool:
        """Start the next attempt of a step (or fan-out item) whose dependencies are done."""
        assert self.ctx is not None and self.scheduler is not None and self.service is not None
        step = plan.steps[unit.step_id]
        attempt = unit.attempts + 1
        values = self._vars(run, outputs, item, unit.item)
        now = utcnow()
        if ready_at is not None:
            WORKFLOW_STEP_SCHEDULING.labels(step.kind).observe(max(0.0, (now - as_utc(ready_at)).total_seconds()))
        deadline = now + timedelta(seconds=step.timeout_seconds) if step.timeout_seconds else None
        if isinstance(step, ConditionStepDef):
            try:
                result = bool(templates.evaluate(step.if_, values))
            except Exception as exc:  # noqa: BLE001
                return await self._finish(run, plan, unit, FAILED, error=f"if: {exc}", expect=PENDING)
            return await self._finish(run, plan, unit, COMPLETED, output=result, expect=PENDING, attempts=1)
        key = f"wf:{run.id}:{_step_key(unit)}:{attempt}"
        if isinstance(step, AgentStepDef):
            try:
                task_text = str(templates.render(step.task, values))
                context = templates.render_value(step.context, values)
            except Exception as exc:  # noqa: BLE001
                return await self._finish(run, plan, unit, FAILED, error=f"template: {exc}", expect=PENDING)
            context = dict(context) if isinstance(context, dict) else {"value": context}
            if run.rollout_id:
                context["rollout_parent_id"] = run.rollout_id
            try:
                task, _ = await self.scheduler.assign(
                    task=task_text[:100_000] or "(empty)",
                    agent_id=step.agent,
                    agent_type=step.agent_type,
                    priority=step.priority,
                    context=context,
                    idempotency_key=key,
                    created_by=run.owner,
                )
            except AppError as exc:
                if await self._start_attempt(unit, attempt, deadline):
                    await self._attempt_failed(run, plan, unit, f"{exc.code}: {exc.message}")
                return True
            self._track_task(run.id, int(task["id"]))
            return await self._start_attempt(unit, attempt, deadline, task_id=int(task["id"]))
        if isinstance(step, ToolStepDef):
            if not await self._start_attempt(unit, attempt, deadline):
                return False
            self._spawn_tool(run, plan, unit, None, None, values=values)
            return True
        if isinstance(step, SubWorkflowStepDef):
            if run.depth + 1 > MAX_DEPTH:
                return await self._finish(
                    run, plan, unit, FAILED, error=f"sub-workflows nest deeper than {MAX_DEPTH}", expect=PENDING
                )
            try:
                child_input = templates.render_value(step.input, values)
            except Exception as exc:  # noqa: BLE001
                return await self._finish(run, plan, unit, FAILED, error=f"template: {exc}", expect=PENDING)
            child_id = await self._child_run(run, step, unit, key, child_input)
            if child_id is None:
                return await self._finish(
                    run, plan, unit, FAILED, error=f"workflow '{step.workflow}' no longer exists", expect=PENDING
                )
            return await self._start_attempt(unit, attempt, deadline, child_run_id=child_id)
        return False

    async def _child_run(
        self, run: WorkflowRun, step: SubWorkflowStepDef, unit: WorkflowStep, key: str, child_input: Any
    ) -> int | None:
        assert self.ctx is not None and self.service is not None
        async with self.ctx.db.session() as s:
            existing = await s.scalar(select(WorkflowRun.id).where(WorkflowRun.idempotency_key == key))
            if existing is not None:
                return int(existing)
            number = str(step.workflow)
            cond = Workflow.id == int(number) if number.isdigit() else Workflow.name == number
            found = (
                await s.execute(
                    select(Workflow, WorkflowVersion)
                    .join(
                        WorkflowVersion,
                        (WorkflowVersion.workflow_id == Workflow.id) & (WorkflowVersion.version == Workflow.version),
                    )
                    .where(cond)
                )
            ).first()
            if found is not None:
                s.expunge_all()
        if found is None:
            return None
        try:
            child, event = await self.service.start_run(
                found[0],
                found[1],
                child_input if isinstance(child_input, dict) else {"value": child_input},
                owner=run.owner,
                parent=run,
                parent_step_id=unit.id,
                idempotency_key=key,
            )
        except IntegrityError:  # a concurrent pass created it
            async with self.ctx.db.session() as s:
                return await s.scalar(select(WorkflowRun.id).where(WorkflowRun.idempotency_key == key))
        await self.ctx.events.announce([event])
        return child.id

    async def _start_attempt(self, unit: WorkflowStep, attempt: int, deadline: datetime | None, **values: Any) -> bool:
        """``pending`` -> ``running`` for attempt ``attempt`` (only from the expected attempt count)."""
        assert self.ctx is not None
        now = utcnow()
        async with self.ctx.db.session() as s:
            res = await s.execute(
                update(WorkflowStep)
                .where(WorkflowStep.id == unit.id, WorkflowStep.status == PENDING, WorkflowStep.attempts == attempt - 1)
                .values(
                    status=RUNNING,
                    attempts=attempt,
                    started_at=func.coalesce(WorkflowStep.started_at, now),
                    deadline_at=deadline,
                    not_before=None,
                    **values,
                )
            )
            await s.commit()
        if not affected_rows(res):
            return False
        unit.status, unit.attempts, unit.deadline_at, unit.not_before = RUNNING, attempt, deadline, None
        unit.started_at = unit.started_at or now
        for key, value in values.items():
            setattr(unit, key, value)
        return True

    async def _finish(
        self,
        run: WorkflowRun,
        plan: _Plan,
        unit: WorkflowStep,
        status: str,
        *,
        output: Any = None,
        error: str | None = None,
        expect: str = RUNNING,
        attempts: int | None = None,
    ) -> bool:
        """A step (or item) reaches a terminal state, with its ``step_*`` event for whole steps."""
        assert self.ctx is not None
        now = utcnow()
        event: Event | None = None
        values: dict[str, Any] = {"status": status, "completed_at": now, "output": output, "error": error}
        if attempts is not None:
            values |= {"attempts": attempts, "started_at": now}
        async with self.ctx.db.session() as s:
            res = await s.execute(
                update(WorkflowStep)
                .where(
                    WorkflowStep.id == unit.id, WorkflowStep.status == expect, WorkflowStep.attempts == unit.attempts
                )
                .values(**values)
            )
            if not affected_rows(res):
                await s.rollback()
                return False
            if unit.item < 0 and status in (COMPLETED, FAILED):
                event = await record_run_event(
                    s,
                    run,
                    plan.workflow_name,
                    "step_completed" if status == COMPLETED else "step_failed",
                    step_id=unit.step_id,
                    kind=unit.kind,
                    step_status=status,
                    attempts=attempts or unit.attempts,
                    task_id=unit.task_id,
                    error=error,
                )
            await s.commit()
        unit.status, unit.output, unit.error, unit.completed_at = status, output, error, now
        if attempts is not None:
            unit.attempts, unit.started_at = attempts, now
        if event is not None:
            await self.ctx.events.announce([event])
        return True

    async def _attempt_failed(self, run: WorkflowRun, plan: _Plan, unit: WorkflowStep, error: str) -> bool:
        """A failed attempt: retried after the back-off while attempts remain, else the step fails."""
        assert self.ctx is not None
        policy = plan.steps[unit.step_id].retry
        if unit.attempts < policy.max_attempts:
            delay = policy.backoff_seconds * (2 ** max(0, unit.attempts - 1))
            async with self.ctx.db.session() as s:
                res = await s.execute(
                    update(WorkflowStep)
                    .where(
                        WorkflowStep.id == unit.id,
                        WorkflowStep.status == RUNNING,
                        WorkflowStep.attempts == unit.attempts,
                    )
                    .values(status=PENDING, not_before=utcnow() + timedelta(seconds=delay), error=error[:4000])
                )
                await s.commit()
            if not affected_rows(res):
                return False
            unit.status, unit.error = PENDING, error[:4000]
            unit.not_before = utcnow() + timedelta(seconds=delay)
            return True
        return await self._finish(run, plan, unit, FAILED, error=error[:4000])

    def _spawn_tool(
        self,
        run: WorkflowRun,
        plan: _Plan,
        unit: WorkflowStep,
        aggregates: dict[str, WorkflowStep] | None,
        items: dict[str, list[WorkflowStep]] | None,
        *,
        values: dict[str, Any] | None = None,
    ) -> None:
        """Call a tool step's tool in the background; its outcome is recorded when it returns."""
        if values is None:
            assert aggregates is not None
            outputs = {sid: (a.output if a.status == COMPLETED else None) for sid, a in aggregates.items()}
            item = None
            if unit.item >= 0:
                agg = aggregates[unit.step_id]
                listed = (agg.output or {}).get("items", []) if isinstance(agg.output, dict) else []
                item = listed[unit.item] if unit.item < len(listed) else None
            values = self._vars(run, outputs, item, unit.item)
        self.tool_attempts.add((unit.id, unit.attempts))
        self._units_of.setdefault(run.id, set()).add(unit.id)
        call = asyncio.create_task(self._call_tool(run, plan, unit, values), name=f"workflow-tool-{unit.id}")
        self.tools_in_flight[unit.id] = call

    async def _call_tool(self, run: WorkflowRun, plan: _Plan, unit: WorkflowStep, values: dict[str, Any]) -> None:
        assert self.ctx is not None
        step = plan.steps[unit.step_id]
        assert isinstance(step, ToolStepDef)
        try:
            try:
                args = templates.render_value(step.args, values)
            except Exception as exc:  # noqa: BLE001
                await self._finish(run, plan, unit, FAILED, error=f"template: {exc}")
                return
            tool_ctx = ToolContext(
                settings=self.settings,
                app=self.ctx,
                user=run.owner,
                extra={"workflow_run_id": run.id, "workflow_step": _step_key(unit)},
            )
            registry = default_registry()
            try:
                result = await asyncio.wait_for(
                    registry.invoke(step.tool, args if isinstance(args, dict) else {}, tool_ctx),
                    timeout=step.timeout_seconds,
                )
            except asyncio.TimeoutError:
                await self._attempt_failed(run, plan, unit, f"timed out after {step.timeout_seconds:g}s")
                return
            if result.ok:
                await self._finish(run, plan, unit, COMPLETED, output=templates.jsonable_value(result.output))
            else:
                await self._attempt_failed(run, plan, unit, result.error or "tool failed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded; the run is looked at again
            log.exception("tool step %s of run %s", unit.step_id, run.id)
            self.last_error = f"tool step {unit.step_id}: {exc}"
        finally:
            self.tools_in_flight.pop(unit.id, None)
            self.schedule(run.id)

    async def _set_wake(self, run: WorkflowRun, rows: list[WorkflowStep]) -> None:
        assert self.ctx is not None
        now = utcnow()
        candidates = [now + timedelta(seconds=SAFETY_INTERVAL_S)]
        for r in rows:
            if r.status == PENDING and r.not_before is not None:
                candidates.append(as_utc(r.not_before))
            if r.status == RUNNING and r.deadline_at is not None:
                candidates.append(as_utc(r.deadline_at))
        wake = min(candidates)
        if run.wake_at is not None and now < as_utc(run.wake_at) <= wake:
            return  # already due again in time
        async with self.ctx.db.session() as s:
            await s.execute(update(WorkflowRun).where(WorkflowRun.id == run.id).values(wake_at=wake))
            await s.commit()

    async def _complete_run(self, run: WorkflowRun, plan: _Plan, aggregates: dict[str, WorkflowStep]) -> None:
        outputs = {sid: (a.output if a.status == COMPLETED else None) for sid, a in aggregates.items()}
        if plan.definition.output is not None:
            try:
                output = templates.render_value(plan.definition.output, self._vars(run, outputs))
            except Exception as exc:  # noqa: BLE001
                await self._end_run(run, plan, FAILED, error=f"output: {exc}")
                return
        else:
            output = {sid: v for sid, v in outputs.items() if aggregates[sid].status == COMPLETED}
        await self._end_run(run, plan, COMPLETED, output=output)

    async def _end_run(
        self, run: WorkflowRun, plan: _Plan, status: str, *, output: Any = None, error: str | None = None
    ) -> None:
        assert self.ctx is not None
        if status == FAILED:
            ended = await cancel_run_tree(self.ctx, run.id, error or "failed", status=FAILED)
        else:
            now = utcnow()
            async with self.ctx.db.session() as s:
                row = (
                    await s.execute(
                        update(WorkflowRun)
                        .where(WorkflowRun.id == run.id, WorkflowRun.status == RUNNING)
                        .values(status=status, output=output, completed_at=now, lease_owner=None, wake_at=None)
                        .returning(WorkflowRun)
                        .execution_options(synchronize_session=False)
                    )
                ).scalar_one_or_none()
                ended = row is not None
                event = None
                if row is not None:
                    event = await record_run_event(s, row, plan.workflow_name, "workflow_completed")
                    if row.parent_run_id is not None:
                        await s.execute(
                            update(WorkflowRun).where(WorkflowRun.id == row.parent_run_id).values(wake_at=now)
                        )
                    await finish_run_rollout(self.ctx, s, run.rollout_id, COMPLETED, output)
                await s.commit()
            if event is not None:
                await self.ctx.events.announce([event])
        if ended:
            WORKFLOW_RUNS.labels(status).inc()
            self.held.discard(run.id)
            for task_id in self._tasks_of.pop(run.id, set()):
                self.task_runs.pop(task_id, None)
            self.tool_attempts = {(u, a) for u, a in self.tool_attempts if u not in self._units_of.pop(run.id, set())}
            if run.parent_run_id is not None and run.parent_run_id in self.held:
                self.schedule(run.parent_run_id)
