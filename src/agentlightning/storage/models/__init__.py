"""All ORM models, one module per owning package."""

from agentlightning.storage.models.agents import Agent, AgentMessage, AgentNote
from agentlightning.storage.models.base import Base
from agentlightning.storage.models.gateway import GatewayKeyPolicy
from agentlightning.storage.models.knowledge import KnowledgeItem
from agentlightning.storage.models.rl import RLEnvironment, RLExperiment, RLMetricPoint
from agentlightning.storage.models.rollouts import Reward, Rollout
from agentlightning.storage.models.system import SystemConfigRow
from agentlightning.storage.models.tasks import Task, TaskEvent, TraceSpan
from agentlightning.storage.models.users import ApiKey, RefreshToken, RevokedToken, User

__all__ = [
    "Agent",
    "AgentMessage",
    "AgentNote",
    "ApiKey",
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
    "SystemConfigRow",
    "Task",
    "TaskEvent",
    "TraceSpan",
    "User",
]
