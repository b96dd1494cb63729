"""All ORM models, one module per owning package."""

from agentlightning.storage.models.agents import Agent, AgentMessage, AgentNote
from agentlightning.storage.models.audit import AuditEntry
from agentlightning.storage.models.auto_rl import AutoRLLease, AutoRLPolicy, AutoRLPromotion, AutoRLTrigger
from agentlightning.storage.models.bandit import BanditArm, BanditObservation
from agentlightning.storage.models.base import Base
from agentlightning.storage.models.gateway import GatewayKeyPolicy
from agentlightning.storage.models.knowledge import KnowledgeItem
from agentlightning.storage.models.rl import RLEnvironment, RLExperiment, RLMetricPoint
from agentlightning.storage.models.rollouts import Reward, Rollout
from agentlightning.storage.models.suite import SuiteTask
from agentlightning.storage.models.system import SystemConfigRow
from agentlightning.storage.models.tasks import Task, TaskEvent, TraceSpan
from agentlightning.storage.models.users import ApiKey, RefreshToken, RevokedToken, User
from agentlightning.storage.models.workflows import Workflow, WorkflowRun, WorkflowStep, WorkflowVersion

__all__ = [
    "Agent",
    "AgentMessage",
    "AgentNote",
    "ApiKey",
    "AutoRLLease",
    "AutoRLPolicy",
    "AutoRLPromotion",
    "AutoRLTrigger",
    "BanditArm",
    "BanditObservation",
    "AuditEntry",
    "Base",
    "GatewayKeyPolicy",
    "KnowledgeItem",
    "RLEnvironment",
    "RLExperiment",
    "RLMetricPoint",
    "RefreshToken",
    "Reward",
    "RevokedToken",
    "Rollout",
    "SuiteTask",
    "SystemConfigRow",
    "Task",
    "TaskEvent",
    "TraceSpan",
    "User",
    "Workflow",
    "WorkflowRun",
    "WorkflowStep",
    "WorkflowVersion",
]
