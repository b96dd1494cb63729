"""The SDK's core: the platform client, the background recorder, rollouts and rewards.

Imports only ``httpx`` and ``pydantic``: an agent installs ``agentlightning`` without the server.
"""

from agentlightning.sdk.client import AsyncClient, Client, default_client
from agentlightning.sdk.models import (
    AgentInfo,
    AgentResources,
    IngestResult,
    PlatformError,
    RewardInfo,
    RolloutInfo,
    TaskInfo,
)
from agentlightning.sdk.recorder import Recorder
from agentlightning.sdk.rollout import Rollout, current_rollout, emit_reward

__all__ = [
    "AgentInfo",
    "AgentResources",
    "AsyncClient",
    "Client",
    "IngestResult",
    "PlatformError",
    "Recorder",
    "RewardInfo",
    "Rollout",
    "RolloutInfo",
    "TaskInfo",
    "current_rollout",
    "default_client",
    "emit_reward",
]
