"""The platform's one vocabulary of states: agent, task, experiment and rollout statuses, task
priorities, rollout and reward sources.

Every model, route filter, service and the database (CHECK constraints of migration ``0007``) uses
these names; nothing else spells a status. Each ``Literal`` is the type to annotate with; the tuple
beside it is the same values in a fixed order, for loops, filters and constraints.
"""

from __future__ import annotations

from typing import Literal, get_args

AgentStatus = Literal[
    "active",  # takes new tasks and runs them
    "paused",  # keeps its queued tasks but takes no new work from the queue until resumed
    "disabled",  # refuses new assignments; its history stays
]

TaskStatus = Literal[
    "pending",  # queued, waiting for a worker to claim it (also after a lost lease, while retries remain)
    "running",  # claimed by a worker under a lease that the worker renews
    "completed",  # finished with a result (terminal)
    "failed",  # finished with an error, or ran out of attempts (terminal)
    "cancelled",  # cancelled by a user or because its agent was deleted (terminal)
]

TaskPriority = Literal[
    "low",  # runs after every other pending task of its agent
    "medium",  # the default
    "high",  # runs before low and medium
    "critical",  # runs first
]

ExperimentStatus = Literal[
    "created",  # validated and stored; not yet handed to the manager
    "queued",  # waiting for a manager with capacity (also when resuming after a restart)
    "running",  # a manager runs it under a lease (heartbeat)
    "completed",  # trained for its whole budget (terminal)
    "stopped",  # stopped on request before the end; checkpoints are kept (terminal)
    "failed",  # ended by an error, or could not be resumed (terminal)
]

WorkflowRunStatus = Literal[
    "pending",  # created; no step dispatched yet (the engine picks it up)
    "running",  # the engine advances it under a lease
    "completed",  # every step finished or was skipped (terminal)
    "failed",  # a step failed after its retries and the definition did not route the failure (terminal)
    "cancelled",  # cancelled by a user (or its workflow was deleted) (terminal)
]

WorkflowStepStatus = Literal[
    "pending",  # waiting for its dependencies (or for its retry time)
    "running",  # dispatched: a task queued or running, a tool call or a sub-workflow in progress
    "completed",  # finished with an output (terminal)
    "failed",  # failed after its retries (terminal)
    "skipped",  # not run: on a branch its condition did not take, or every dependency skipped (terminal)
    "cancelled",  # its run was cancelled or failed before it finished (terminal)
]

WorkflowStepKind = Literal[
    "agent",  # a task for an agent, through the task queue
    "tool",  # one call of a built-in or registered tool
    "condition",  # a sandboxed expression over earlier outputs that picks a branch
    "workflow",  # a sub-workflow run
]

WorkflowVisibility = Literal[
    "private",  # its owner and holders of workflow:write only
    "shared",  # anyone with workflow:read may read and run it
]

#: Where a rollout (one run of an agent, with its spans and rewards) came from.
RolloutSource = Literal[
    "task",  # a task run by the platform's workers (one rollout per task)
    "sdk",  # sent by an agent instrumented with the Python SDK (``POST /api/v2/rollouts``)
    "gateway",  # calls through the OpenAI-compatible gateway (``/v1/chat/completions``)
    "workflow",  # a workflow run; its steps' task rollouts nest under it (``parent_id``)
]

RolloutStatus = Literal[
    "running",  # still receiving spans
    "completed",  # finished with an output (terminal)
    "failed",  # finished with an error (terminal)
]

#: Who gave a reward.
RewardSource = Literal[
    "verifier",  # the verifier declared in the task's ``context.verifier``
    "feedback",  # a user's score of a task (``POST /api/v2/tasks/{id}/feedback``)
    "sdk",  # the agent's own code (``emit_reward`` / ``POST /api/v2/rollouts/{id}/rewards``)
    "gateway",  # a gateway client
    "system",  # the platform itself (evaluations, Auto-RL)
]

AGENT_STATUSES: tuple[AgentStatus, ...] = get_args(AgentStatus)
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
TASK_PRIORITIES: tuple[TaskPriority, ...] = get_args(TaskPriority)
EXPERIMENT_STATUSES: tuple[ExperimentStatus, ...] = get_args(ExperimentStatus)
ROLLOUT_SOURCES: tuple[RolloutSource, ...] = get_args(RolloutSource)
ROLLOUT_STATUSES: tuple[RolloutStatus, ...] = get_args(RolloutStatus)
REWARD_SOURCES: tuple[RewardSource, ...] = get_args(RewardSource)
#: Rollout states a rollout never leaves.
ROLLOUT_TERMINAL: frozenset[RolloutStatus] = frozenset({"completed", "failed"})

#: The state of one platform component (database, cache, event bus, worker pool, ...).
ComponentState = Literal[
    "ok",  # answering normally
    "starting",  # coming up (warming an index, connecting); not a fault
    "degraded",  # answering with reduced service
    "down",  # not answering
]
COMPONENT_STATES: tuple[ComponentState, ...] = get_args(ComponentState)

#: Which part of a verifiable suite a task belongs to (``verifiable_tasks.split``).
SuiteSplit = Literal[
    "train",  # optimisers may score candidates on it
    "heldout",  # only the promotion gate evaluates on it; optimisers never see it
]
SUITE_SPLITS: tuple[SuiteSplit, ...] = get_args(SuiteSplit)

#: Kinds of built-in verifiable tasks (``verifiable_tasks.task_type``).
SuiteTaskType = Literal[
    "arithmetic",  # word problems where the calculator pays off
    "format",  # the answer must follow an output format stated in the task
    "knowledge",  # answerable only from documents the suite installs in the knowledge base
    "sql",  # read-only questions over the suite's sample SQLite database
    "function_calling",  # pick a function and its arguments (from the BFCL data set)
]
SUITE_TASK_TYPES: tuple[SuiteTaskType, ...] = get_args(SuiteTaskType)
#: A user's role (the spec's role table; permissions per role live in ``agentlightning.auth.rbac``).
UserRole = Literal[
    "admin",  # every permission, including user administration and the audit log
    "developer",  # agents, RL, workflows, knowledge; reads the system
    "user",  # reads agents and knowledge, assigns tasks, reads workflows
]
USER_ROLES: tuple[UserRole, ...] = get_args(UserRole)

#: What an audit-log entry records (``audit_log.action``).
AuditAction = Literal[
    "user.created",  # an admin created a user
    "user.role_changed",  # an admin changed a user's role (their access tokens end)
    "user.disabled",  # an admin disabled a user (their tokens and sessions end)
    "user.enabled",  # an admin enabled a user again
    "user.password_reset",  # an admin set a user's password (their tokens and sessions end)
]
AUDIT_ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)
WORKFLOW_RUN_STATUSES: tuple[WorkflowRunStatus, ...] = get_args(WorkflowRunStatus)
WORKFLOW_STEP_STATUSES: tuple[WorkflowStepStatus, ...] = get_args(WorkflowStepStatus)
WORKFLOW_STEP_KINDS: tuple[WorkflowStepKind, ...] = get_args(WorkflowStepKind)
WORKFLOW_VISIBILITIES: tuple[WorkflowVisibility, ...] = get_args(WorkflowVisibility)
#: Workflow run states a run never leaves.
WORKFLOW_RUN_TERMINAL: frozenset[WorkflowRunStatus] = frozenset({"completed", "failed", "cancelled"})
#: Workflow run states the engine still advances.
WORKFLOW_RUN_ACTIVE: frozenset[WorkflowRunStatus] = frozenset({"pending", "running"})
#: Step states a step never leaves.
WORKFLOW_STEP_TERMINAL: frozenset[WorkflowStepStatus] = frozenset({"completed", "failed", "skipped", "cancelled"})


#: Task states a task never leaves.
TASK_TERMINAL: frozenset[TaskStatus] = frozenset({"completed", "failed", "cancelled"})
#: Task states of the live queue (what workers and concurrency limits count).
TASK_ACTIVE: frozenset[TaskStatus] = frozenset({"pending", "running"})
#: Experiment states an experiment never leaves.
EXPERIMENT_TERMINAL: frozenset[ExperimentStatus] = frozenset({"completed", "stopped", "failed"})
#: Experiment states that may still change.
EXPERIMENT_ACTIVE: frozenset[ExperimentStatus] = frozenset({"created", "queued", "running"})
#: Queue order of priorities: a higher rank is claimed first (stored as ``tasks.priority_rank``).
PRIORITY_RANKS: dict[TaskPriority, int] = {p: rank for rank, p in enumerate(TASK_PRIORITIES)}

#: Columns constrained to a vocabulary: ``(table, column) -> allowed values`` (migration ``0007``).
CONSTRAINED_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("agents", "status"): AGENT_STATUSES,
    ("tasks", "status"): TASK_STATUSES,
    ("tasks", "priority"): TASK_PRIORITIES,
    ("rl_experiments", "status"): EXPERIMENT_STATUSES,
    ("rollouts", "status"): ROLLOUT_STATUSES,  # 0012
    ("rollouts", "source"): ROLLOUT_SOURCES,  # 0012
    ("rewards", "source"): REWARD_SOURCES,  # 0012
}


def check_name(table: str, column: str) -> str:
    """The name of the CHECK constraint that holds ``table.column`` to its vocabulary."""
    return f"ck_{table}_{column}"


def check_sql(column: str, values: tuple[str, ...]) -> str:
    """The CHECK condition ``column IN ('a', 'b', ...)`` (values are our own constants, never input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# --- Auto-RL (agentlightning.rl.auto) ------------------------------------------------------------

#: What an experiment runs: SB3 on a Gymnasium environment, or an optimiser on an agent's resources.
ExperimentKind = Literal[
    "classic",  # Stable-Baselines3 on a Gymnasium environment, in a child process or on Ray
    "agent",  # an agent optimiser (apo, bandit, grpo) run in the manager's process
]
EXPERIMENT_KINDS: tuple[ExperimentKind, ...] = get_args(ExperimentKind)

#: The agent optimisers an agent-optimisation experiment may run.
AgentAlgorithm = Literal[
    "apo",  # prompt optimisation with an LLM critic
    "bandit",  # picks the best declared variant (prompt/model/temperature/tools)
    "grpo",  # LoRA fine-tuning of an open model
]
AGENT_ALGORITHMS: tuple[AgentAlgorithm, ...] = get_args(AgentAlgorithm)

#: Why Auto-RL started an optimisation.
AutoRLReason = Literal[
    "monitor",  # the monitor saw the agent's rolling success rate under the policy's threshold
    "manual",  # someone called POST /api/v2/rl/auto-trigger
]

#: How an Auto-RL optimisation ended (``auto_rl_triggers.outcome``).
AutoRLOutcome = Literal[
    "running",  # its experiment is queued or running
    "promoted",  # the candidate beat the incumbent significantly on held-out tasks and was promoted
    "rejected",  # the gate kept the incumbent (no significant win)
    "failed",  # the experiment failed
    "stopped",  # the experiment was stopped before the gate
]
AUTO_RL_OUTCOMES: tuple[AutoRLOutcome, ...] = get_args(AutoRLOutcome)

#: A change of an agent's resources recorded in ``auto_rl_promotions``.
AutoRLChange = Literal[
    "promotion",  # a gated candidate replaced the incumbent
    "rollback",  # a promotion was undone: the resources before it are back
]
