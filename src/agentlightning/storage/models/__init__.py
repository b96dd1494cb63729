"""All ORM models, one module per owning package."""

from agentlightning.storage.models.agents import Agent
from agentlightning.storage.models.base import Base
from agentlightning.storage.models.knowledge import KnowledgeItem
from agentlightning.storage.models.rl import RLExperiment
from agentlightning.storage.models.system import SystemConfigRow
from agentlightning.storage.models.tasks import Task
from agentlightning.storage.models.users import ApiKey, RefreshToken, RevokedToken, User

__all__ = [
    "Agent",
    "ApiKey",
    "Base",
    "KnowledgeItem",
    "RLExperiment",
    "RefreshToken",
    "RevokedToken",
    "SystemConfigRow",
    "Task",
    "User",
]
