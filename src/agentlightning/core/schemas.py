"""Public (response) shapes of the system endpoints: health, status, statistics.

The runtime configuration's shape is :class:`agentlightning.core.system_config.SystemConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentlightning.vocabulary import ComponentState


class DependencyCheck(BaseModel):
    """Whether one dependency (database, Redis) answered, and how fast."""

    status: ComponentState
    latency_ms: float | None = None
    error: str | None = None


class HealthStatus(BaseModel):
    """Liveness (``healthy``, with uptime) or readiness (``ready``, with each dependency's check)."""

    status: Literal["healthy", "ready"]
    uptime_seconds: float | None = None
    checks: dict[str, DependencyCheck] | None = None


class ComponentStatus(BaseModel):
    """One component's state; components add their own fields (pool, backend, running jobs, ...)."""

    model_config = ConfigDict(extra="allow")

    status: ComponentState
    state: str | None = Field(default=None, description="the service's own word when it differs (running, idle, ...)")


class HostResources(BaseModel):
    """Host utilisation in percent."""

    cpu_percent: float
    memory_percent: float
    disk_percent: float


class SystemStatus(BaseModel):
    """Every component with its state, plus version and environment."""

    status: Literal["healthy", "degraded"]
    version: str
    environment: str
    uptime_seconds: float
    components: dict[str, ComponentStatus]
    resources: HostResources


class StatusCounts(BaseModel):
    """Rows of a table, in total and per status."""

    total: int
    by_status: dict[str, int]


class CacheNamespaceStats(BaseModel):
    """Hits and misses of one cache namespace."""

    hits: int
    misses: int
    hit_rate: float | None = None


class CacheStats(BaseModel):
    """Cache effectiveness since the process started."""

    backend: str
    hit_rate: float | None = None
    by_namespace: dict[str, CacheNamespaceStats]


class SystemStats(BaseModel):
    """Row counts, uptime and cache effectiveness."""

    uptime_seconds: float
    users: int
    agents: StatusCounts
    tasks: StatusCounts
    knowledge_items: int
    rl_experiments: StatusCounts
    cache: CacheStats
