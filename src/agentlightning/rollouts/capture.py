"""The rollout of a task run, written in the same transaction as the task's outcome.

A worker finishing a task hands a :class:`TaskRollout` to the scheduler, whose single finish
statement (PostgreSQL) or transaction (SQLite) also writes the rollout row and, when the task's
``context.verifier`` scored the answer, its ``verifier`` reward: capturing a run costs no round
trip of its own.  The rows are defined here, by the owner of ``rollouts`` and ``rewards``; the
queue only runs them.  Listeners hear about the reward after the commit (:meth:`TaskRollout.event`).

The rollout of task ``N`` is ``task-N`` (:func:`~agentlightning.rollouts.schemas.task_rollout_id`),
so the spans of every attempt carry its id before the row exists, and the row is written once
(``ON CONFLICT DO NOTHING``), by the attempt whose outcome is stored.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from agentlightning.errors import ValidationFailed
from agentlightning.rollouts.listeners import RewardEvent
from agentlightning.rollouts.schemas import ROLLOUT_ID_PATTERN, task_rollout_id
from agentlightning.rollouts.verifiers import verify
from agentlightning.storage.models import Reward, Rollout
from agentlightning.vocabulary import RolloutStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["PG_FINISH_COLUMNS", "PG_FINISH_CTES", "RESERVED_CONTEXT_KEYS", "TaskRollout", "model_visible_context"]

log = logging.getLogger(__name__)

#: ``context`` keys copied into the rollout's ``metadata`` (the bandit learns per variant and type).
METADATA_CONTEXT_KEYS = ("variant", "task_type")
#: Task ``context`` keys the platform reads itself and never shows the model: a verifier's
#: expected answer in the prompt would make every run pass, and the bandit's bookkeeping labels
#: are noise to the model (a small model echoed ``{"task_type": "format"}`` as its answer).
RESERVED_CONTEXT_KEYS = frozenset({"verifier", "rollout_parent_id", *METADATA_CONTEXT_KEYS})
_ROLLOUT_ID = re.compile(ROLLOUT_ID_PATTERN)


def model_visible_context(context: dict[str, Any]) -> dict[str, Any]:
    """The part of a task's ``context`` the agent's model sees."""
    if not RESERVED_CONTEXT_KEYS.intersection(context):
        return context
    return {k: v for k, v in context.items() if k not in RESERVED_CONTEXT_KEYS}


@dataclass(slots=True)
class TaskRollout:
    """The rollout row (and verifier reward) of one finished task attempt."""

    id: str
    task_id: int
    agent_id: int
    status: RolloutStatus
    input: dict[str, Any]
    output: Any
    parent_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    reward: float | None = None
    reward_name: str | None = None
    reward_details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        task_id: int,
        agent_id: int,
        description: str,
        context: dict[str, Any],
        status: RolloutStatus,
        answer: str | None = None,
        error: str | None = None,
        trace_id: str | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> TaskRollout:
        """The rollout of a task that ended with ``status``; a completed answer is verified when
        the context declares a verifier."""
        parent = context.get("rollout_parent_id")
        metadata = {k: context[k] for k in METADATA_CONTEXT_KEYS if k in context}
        if trace_id:
            metadata["trace_id"] = trace_id
        metadata |= extra_metadata or {}
        rollout = cls(
            id=task_rollout_id(task_id),
            task_id=task_id,
            agent_id=agent_id,
            status=status,
            input={"task": description, "context": model_visible_context(context)},
            output={"answer": answer} if status == "completed" else {"error": error},
            parent_id=parent if isinstance(parent, str) and _ROLLOUT_ID.match(parent) else None,
            metadata=metadata,
        )
        spec = context.get("verifier")
        if isinstance(spec, dict):
            rollout.metadata["verifier"] = spec  # the dataset export's ground truth
        if spec is not None and status == "completed":
            try:
                result = verify(spec, answer or "")
            except ValidationFailed as exc:  # validated at assign time; a spec from before that is skipped
                log.warning("task %s: verifier not applied: %s", task_id, exc.message)
                rollout.metadata["verifier_error"] = exc.message[:500]
            else:
                rollout.reward = result.score
                rollout.reward_name = str(spec.get("name") or spec.get("type"))[:255]
                rollout.reward_details = result.as_details() | {"type": spec.get("type")}
        return rollout

    def event(self) -> RewardEvent | None:
        """The listeners' event of the verifier reward (None without one)."""
        if self.reward is None:
            return None
        return RewardEvent(
            rollout_id=self.id,
            agent_id=self.agent_id,
            task_id=self.task_id,
            value=self.reward,
            source="verifier",
            span_id=None,
            metadata=dict(self.metadata),
        )

    def pg_parameters(self) -> dict[str, Any]:
        """This rollout's fields of an outcome row of :data:`PG_FINISH_CTES`."""
        return {
            "rollout_id": self.id,
            "rollout_parent_id": self.parent_id,
            "rollout_status": self.status,
            "rollout_input": self.input,
            "rollout_output": self.output,
            "rollout_metadata": self.metadata,
            "rollout_reward": self.reward,
            "reward_name": self.reward_name,
            "reward_details": self.reward_details,
        }

    async def write(
        self, session: AsyncSession, *, owner: str | None, started_at: datetime | None, now: datetime
    ) -> None:
        """Insert the rollout (once) and its verifier reward inside the caller's transaction."""
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        values = {
            "id": self.id,
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "parent_id": self.parent_id,
            "source": "task",
            "status": self.status,
            "owner": owner,
            "input": self.input,
            "output": self.output,
            "reward": self.reward,
            "meta": self.metadata,
            "created_at": started_at or now,
            "updated_at": now,
            "ended_at": now,
        }
        stmt = insert(Rollout).values(**values).on_conflict_do_nothing().returning(Rollout.id)
        created = (await session.execute(stmt)).first()
        if created is not None and self.reward is not None:
            session.add(
                Reward(
                    rollout_id=self.id,
                    value=self.reward,
                    source="verifier",
                    name=self.reward_name,
                    details=self.reward_details,
                    created_at=now,
                )
            )
            await session.flush()


#: CTEs appended to the queue's PostgreSQL finish statement after its ``finished`` CTE (the task
#: row, written only while the lease is held): the rollout row once, and its verifier reward.
#: The rollout and reward rows of a batch of outcomes: CTEs appended to the queue's finish
#: statement, which defines ``o`` (one row per outcome, with the :meth:`TaskRollout.pg_parameters`
#: fields) and ``finished`` (the tasks whose outcome was stored; an outcome is theirs when its
#: task id and lease token match, as two runs of one task may share a batch).
PG_FINISH_CTES = """
        , rollout AS (
            INSERT INTO rollouts (id, agent_id, task_id, parent_id, source, status, owner, input, output, reward,
                                  metadata, created_at, updated_at, ended_at)
            SELECT o.rollout_id, finished.agent_id, finished.id, o.rollout_parent_id, 'task', o.rollout_status,
                   finished.created_by, o.rollout_input, o.rollout_output, o.rollout_reward, o.rollout_metadata,
                   COALESCE(finished.started_at, o.completed_at), o.completed_at, o.completed_at
            FROM finished JOIN o ON o.task_id = finished.id AND o.lease_token = finished.lease_token
            WHERE o.rollout_id IS NOT NULL
            ON CONFLICT DO NOTHING
            RETURNING id, task_id
        ), reward AS (
            INSERT INTO rewards (rollout_id, value, source, name, details, created_at)
            SELECT rollout.id, o.rollout_reward, 'verifier', o.reward_name, o.reward_details, o.completed_at
            FROM rollout JOIN finished ON finished.id = rollout.task_id
            JOIN o ON o.task_id = finished.id AND o.lease_token = finished.lease_token
            WHERE o.rollout_reward IS NOT NULL
            RETURNING id
        )
"""

#: The columns of ``o`` that :data:`PG_FINISH_CTES` reads, with their SQL types.
PG_FINISH_COLUMNS = (
    "rollout_id text, rollout_parent_id text, rollout_status text, rollout_input jsonb, rollout_output jsonb, "
    "rollout_reward double precision, rollout_metadata jsonb, reward_name text, reward_details jsonb"
)

#: :data:`PG_FINISH_CTES`' fields of an outcome that writes no rollout.
PG_NO_ROLLOUT: dict[str, Any] = {
    "rollout_id": None,
    "rollout_parent_id": None,
    "rollout_status": None,
    "rollout_input": None,
    "rollout_output": None,
    "rollout_metadata": None,
    "rollout_reward": None,
    "reward_name": None,
    "reward_details": None,
}
