"""Host, database and Redis measurements refreshed when ``/metrics`` is scraped."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil
from sqlalchemy import event

from agentlightning.observability import metrics

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext


def host_usage(path: str = ".") -> dict[str, float]:
    """CPU, memory and disk utilisation in percent."""
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": psutil.disk_usage(path).percent,
    }


def _query_type(statement: str) -> str:
    head = statement.lstrip().split(None, 1)
    kind = head[0].upper() if head else "OTHER"
    return kind if kind in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"} else "OTHER"


def instrument_engine(sync_engine: Any) -> None:
    """Time every statement into ``postgres_query_duration_seconds`` and count it."""

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("agl_query_start", []).append(time.perf_counter())

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        starts = conn.info.get("agl_query_start")
        if not starts:
            return
        elapsed = time.perf_counter() - starts.pop()
        kind = _query_type(statement)
        metrics.POSTGRES_QUERY_DURATION.labels(query_type=kind).observe(elapsed)
        metrics.DB_QUERIES.labels(query_type=kind).inc()


@dataclass
class RateTracker:
    """Turns monotonically increasing counters into per-second rates between scrapes."""

    last_time: float = field(default_factory=time.monotonic)
    last_values: dict[str, float] = field(default_factory=dict)

    def rates(self, values: dict[str, float]) -> dict[str, float]:
        """Per-second rate of each counter since the previous call."""
        now = time.monotonic()
        elapsed = max(now - self.last_time, 1e-6)
        result = {k: max(v - self.last_values.get(k, 0.0), 0.0) / elapsed for k, v in values.items()}
        self.last_time, self.last_values = now, dict(values)
        return result


def _counter_values(counter: Any, label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                values[key] = values.get(key, 0.0) + sample.value
    return values


_db_rate = RateTracker()
_redis_rate = RateTracker()

#: Seconds a scrape reuses the database-derived gauges (queue depth, active agents): a scraper
#: polling several times a second costs at most one pair of COUNT queries per interval.
DB_GAUGES_TTL_S = 5.0
_db_gauges_at: dict[int, float] = {}


async def _refresh_database_gauges(ctx: AppContext) -> None:
    """``task_queue_depth{priority}`` and ``agent_active_count{type}``, at most every few seconds."""
    now = time.monotonic()
    if now - _db_gauges_at.get(id(ctx), -DB_GAUGES_TTL_S) < DB_GAUGES_TTL_S:
        return
    _db_gauges_at[id(ctx)] = now
    # Imported here: the agents package imports this module's metrics at import time.
    from agentlightning.agents.scheduler import TaskScheduler
    from agentlightning.agents.service import AgentService

    try:
        await TaskScheduler(ctx).queue_depth()  # sets task_queue_depth{priority}
        await AgentService(ctx).refresh_active_gauge()
    except Exception as exc:  # noqa: BLE001 - a scrape answers even while the database is away
        log.debug("database gauges not refreshed: %s", exc)


async def refresh_gauges(ctx: AppContext) -> None:
    """Update the gauges that are measured rather than counted."""
    usage = host_usage()
    metrics.SYSTEM_CPU.set(usage["cpu_percent"])
    metrics.SYSTEM_MEMORY.set(usage["memory_percent"])
    metrics.SYSTEM_DISK.set(usage["disk_percent"])

    await _refresh_database_gauges(ctx)
    metrics.POSTGRES_CONNECTIONS_ACTIVE.set(ctx.db.pool_status()["checked_out"])
    db_counts = _counter_values(metrics.DB_QUERIES, "query_type")
    metrics.POSTGRES_QUERIES_PER_SECOND.set(sum(_db_rate.rates({"all": sum(db_counts.values())}).values()))

    hit_rate = ctx.cache.hit_rate()
    if hit_rate is not None:
        metrics.REDIS_CACHE_HIT_RATE.set(hit_rate)
    for op, rate in _redis_rate.rates(_counter_values(metrics.REDIS_OPERATIONS, "operation")).items():
        metrics.REDIS_OPERATIONS_PER_SECOND.labels(operation=op).set(rate)
    info = getattr(ctx.cache, "info", None)
    if info is not None:
        data = await info()
        if data:
            metrics.REDIS_CONNECTED_CLIENTS.set(float(data.get("connected_clients", 0)))
            metrics.REDIS_MEMORY_USAGE.set(float(data.get("used_memory", 0)))
