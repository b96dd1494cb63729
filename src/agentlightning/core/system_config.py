"""The runtime-editable system configuration: validated, persisted, cached under ``system:config``."""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentlightning.core.context import AppContext
from agentlightning.errors import ValidationFailed
from agentlightning.storage import cache_keys
from agentlightning.storage.models import SystemConfigRow
from agentlightning.storage.types import utcnow
from agentlightning.validation import JsonObject, Text


class AutoRLSettings(BaseModel):
    """When Auto-RL starts improving an agent by itself."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    success_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    min_samples: int = Field(default=20, ge=1, le=100_000)
    cooldown_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    #: The last N finished rollouts of an agent make its rolling success rate and mean reward.
    window: int = Field(default=50, ge=1, le=10_000)
    #: The optimiser a triggered run uses (``apo``, ``bandit`` or ``grpo``).
    algorithm: str = Field(default="apo", pattern=r"^(apo|bandit|grpo)$")
    #: Budget of one run: evaluations of the agent on a task, and wall time.
    max_evaluations: int = Field(default=400, ge=1, le=1_000_000)
    max_wall_seconds: int = Field(default=3600, ge=10, le=7 * 24 * 3600)
    #: Significance level of the promotion gate (exact one-sided McNemar test).
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    #: Suite tasks the optimiser trains on, and held-out tasks the gate compares on.
    train_tasks: int = Field(default=20, ge=1, le=1000)
    heldout_tasks: int = Field(default=40, ge=1, le=1000)


class SystemConfig(BaseModel):
    """Settings an admin can change while the platform runs."""

    model_config = ConfigDict(extra="forbid")

    maintenance_mode: bool = Field(default=False, description="Refuse writes from non-admins")
    default_llm_model: str | None = Field(default=None, max_length=255)
    max_task_attempts: int = Field(default=3, ge=1, le=20)
    task_lease_seconds: int = Field(default=60, ge=5, le=3600)
    agent_response_cache: bool = True
    knowledge_search_cache: bool = True
    #: The admin's runtime switch of the http_request tool; None follows ``HTTP_TOOL_ENABLED``.
    http_tool_enabled: bool | None = None
    #: The tool's allow-list; None follows ``HTTP_TOOL_ALLOWED_HOSTS``.
    http_tool_allowed_hosts: list[str] | None = Field(default=None, max_length=100)
    auto_rl: AutoRLSettings = Field(default_factory=AutoRLSettings)


class SystemConfigUpdate(BaseModel):
    """A partial update: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    maintenance_mode: bool | None = None
    default_llm_model: Text | None = Field(default=None, max_length=255)
    max_task_attempts: int | None = Field(default=None, ge=1, le=20)
    task_lease_seconds: int | None = Field(default=None, ge=5, le=3600)
    agent_response_cache: bool | None = None
    knowledge_search_cache: bool | None = None
    http_tool_enabled: bool | None = None
    http_tool_allowed_hosts: list[Annotated[Text, Field(max_length=255)]] | None = Field(default=None, max_length=100)
    auto_rl: JsonObject | None = None


#: Fields where an explicit null is a value (for the http tool's: follow the deployment's settings).
NULLABLE_FIELDS = frozenset({"default_llm_model", "http_tool_enabled", "http_tool_allowed_hosts"})
_LOCAL_TTL_SECONDS = 5.0
_local: dict[int, tuple[float, SystemConfig]] = {}


async def get_config(ctx: AppContext, *, fresh: bool = False) -> SystemConfig:
    """The current configuration (a 5 s in-process copy, then the cache, then the database)."""
    key = id(ctx)
    cached = _local.get(key)
    if not fresh and cached and cached[0] > time.monotonic():
        return cached[1]
    raw = None if fresh else await ctx.cache.get_json(cache_keys.SYSTEM_CONFIG, stat="system_config")
    if raw is None:
        async with ctx.db.session() as session:
            row = await session.get(SystemConfigRow, 1)
            raw = row.config if row is not None else {}
        await ctx.cache.set_json(cache_keys.SYSTEM_CONFIG, raw, cache_keys.SYSTEM_CONFIG_TTL)
    config = SystemConfig.model_validate(raw)
    _local[key] = (time.monotonic() + _LOCAL_TTL_SECONDS, config)
    return config


async def update_config(ctx: AppContext, update: SystemConfigUpdate, updated_by: str) -> SystemConfig:
    """Merge ``update`` into the stored configuration, validate the result, persist and re-cache it."""
    async with ctx.db.session() as session:
        row = await session.get(SystemConfigRow, 1, with_for_update=ctx.db.dialect == "postgresql")
        current = row.config if row is not None else {}
        merged = SystemConfig.model_validate(current).model_dump()
        changes = update.model_dump(exclude_unset=True)
        if "auto_rl" in changes and changes["auto_rl"] is not None:
            changes["auto_rl"] = {**merged["auto_rl"], **changes["auto_rl"]}
        merged.update({k: v for k, v in changes.items() if v is not None or k in NULLABLE_FIELDS})
        try:
            config = SystemConfig.model_validate(merged)
        except ValidationError as exc:
            raise ValidationFailed(
                message="Invalid system configuration",
                details={
                    "errors": [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
                },
            ) from exc
        data = config.model_dump()
        if row is None:
            session.add(SystemConfigRow(id=1, config=data, updated_by=updated_by, updated_at=utcnow()))
        else:
            row.config = data
            row.updated_by = updated_by
        await session.commit()
    await ctx.cache.set_json(cache_keys.SYSTEM_CONFIG, data, cache_keys.SYSTEM_CONFIG_TTL)
    _local.pop(id(ctx), None)
    await ctx.events.publish("system", "config_updated", {"updated_by": updated_by, "fields": sorted(changes)})
    return config
