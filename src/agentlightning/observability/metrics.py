"""Every Prometheus metric of the platform, defined once (the spec's "Prometheus Metrics").

Several processes (``serve --processes N``, i.e. uvicorn workers behind one port): when
``PROMETHEUS_MULTIPROC_DIR`` is set *before* ``prometheus_client`` is imported, every process
writes its values to memory-mapped files there and a scrape of any process aggregates all of them
(:func:`scrape_registry`, prometheus-client's ``MultiProcessCollector``): counters and histograms
are summed, and each gauge aggregates as its ``multiprocess_mode`` says (``mostrecent`` for
host-wide or database-wide measurements, ``livesum`` for per-process quantities such as
checked-out connections). Without it, each process exports its own registry and Prometheus
scrapes each process (replica, worker) separately.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

#: The environment variable of prometheus-client's multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics directory when this process runs in multiprocess mode, else ``None``."""
    return os.environ.get(MULTIPROC_ENV) or None


def scrape_registry() -> CollectorRegistry:
    """What a scrape exports: this process's registry, or in multiprocess mode a registry that
    aggregates every process's files."""
    if multiprocess_dir() is None:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition() -> bytes:
    """The Prometheus text exposition of a scrape."""
    return generate_latest(scrape_registry())


def mark_process_dead(pid: int | None = None) -> None:
    """Forget a finished process's ``live*`` gauges (multiprocess mode; a no-op otherwise)."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid if pid is not None else os.getpid())


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- HTTP -----------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route template", ["method", "endpoint", "status_code"], registry=REGISTRY
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "endpoint"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# --- Agents ---------------------------------------------------------------------------------
AGENT_REQUESTS = Counter(
    "agent_requests_total", "Agent task runs by outcome", ["agent_id", "status"], registry=REGISTRY
)
AGENT_RESPONSE_TIME = Histogram(
    "agent_response_time_seconds", "Agent task run time", ["agent_id"], buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
AGENT_ACTIVE_COUNT = Gauge(
    "agent_active_count", "Active agents by type", ["type"], registry=REGISTRY, multiprocess_mode="mostrecent"
)

#: Pending tasks of active agents per priority: sampled by the worker pool's scaling poll and at
#: scrape time (cached a few seconds).
TASK_QUEUE_DEPTH = Gauge(
    "task_queue_depth",
    "Pending tasks of active agents per priority",
    ["priority"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

# --- Workflows ------------------------------------------------------------------------------
WORKFLOW_RUNS = Counter("workflow_runs_total", "Finished workflow runs by outcome", ["status"], registry=REGISTRY)
WORKFLOW_STEP_SCHEDULING = Histogram(
    "workflow_step_scheduling_seconds",
    "Time from a workflow step becoming ready to its dispatch by the engine",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# --- RL -------------------------------------------------------------------------------------
RL_SESSIONS = Counter(
    "rl_sessions_total", "RL training sessions by outcome", ["algorithm", "status"], registry=REGISTRY
)
RL_TRAINING_DURATION = Gauge(
    "rl_training_duration_seconds",
    "Wall time an RL experiment has trained",
    ["experiment_id"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
RL_PERFORMANCE_GAIN = Gauge(
    "rl_performance_gain_percent",
    "Improvement of an agent from its last promoted change",
    ["agent_id"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

# --- System resources -----------------------------------------------------------------------
SYSTEM_CPU = Gauge(
    "system_cpu_usage_percent", "Host CPU utilisation", registry=REGISTRY, multiprocess_mode="mostrecent"
)
SYSTEM_MEMORY = Gauge(
    "system_memory_usage_percent", "Host memory utilisation", registry=REGISTRY, multiprocess_mode="mostrecent"
)
SYSTEM_DISK = Gauge(
    "system_disk_usage_percent",
    "Disk utilisation of the data directory",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

# --- Database -------------------------------------------------------------------------------
POSTGRES_CONNECTIONS_ACTIVE = Gauge(
    "postgres_connections_active",
    "Database connections checked out of this process's pool",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POSTGRES_QUERIES_PER_SECOND = Gauge(
    "postgres_queries_per_second",
    "Statements per second since the previous scrape",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POSTGRES_QUERY_DURATION = Histogram(
    "postgres_query_duration_seconds",
    "Statement latency by statement kind",
    ["query_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
    registry=REGISTRY,
)
DB_QUERIES = Counter("db_queries_total", "Statements executed by this process", ["query_type"], registry=REGISTRY)

# --- Redis / cache --------------------------------------------------------------------------
REDIS_CONNECTED_CLIENTS = Gauge(
    "redis_connected_clients", "Clients connected to Redis", registry=REGISTRY, multiprocess_mode="mostrecent"
)
REDIS_MEMORY_USAGE = Gauge(
    "redis_memory_usage_bytes", "Memory used by Redis", registry=REGISTRY, multiprocess_mode="mostrecent"
)
REDIS_CACHE_HIT_RATE = Gauge(
    "redis_cache_hit_rate", "Cache hits / lookups of response caches", registry=REGISTRY, multiprocess_mode="mostrecent"
)
REDIS_OPERATIONS_PER_SECOND = Gauge(
    "redis_operations_per_second",
    "Redis calls per second since the previous scrape",
    ["operation"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
REDIS_OPERATIONS = Counter("redis_operations_total", "Redis calls by this process", ["operation"], registry=REGISTRY)
CACHE_LOOKUPS = Counter("cache_lookups_total", "Counted cache lookups", ["namespace", "result"], registry=REGISTRY)
CACHE_BYPASSES = Counter("cache_bypassed_total", "Cache calls skipped because Redis was unreachable", registry=REGISTRY)

# --- Knowledge base -------------------------------------------------------------------------
KNOWLEDGE_SEARCHES = Counter(
    "knowledge_search_total",
    "Knowledge searches by mode and result-cache outcome (hit, miss, bypass when the cache is down)",
    ["mode", "cache"],
    registry=REGISTRY,
)
KNOWLEDGE_SEARCH_DURATION = Histogram(
    "knowledge_search_duration_seconds",
    "Time to answer a knowledge search that ran against the database (cache hits excluded)",
    ["mode"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
KNOWLEDGE_VECTOR_INDEX_SIZE = Gauge(
    "knowledge_vector_index_size",
    "Vectors in this process's in-process (usearch) index",
    registry=REGISTRY,
    multiprocess_mode="max",
)

# --- Gateway --------------------------------------------------------------------------------
RATE_LIMITED = Counter("http_rate_limited_total", "Requests refused with 429", ["scope"], registry=REGISTRY)

# --- OpenAI-compatible gateway (/v1) ----------------------------------------------------------
# ``model`` is a configured model name or ``<provider>/*`` (never a free-form client string).
GATEWAY_REQUESTS = Counter(
    "gateway_requests_total",
    "Gateway chat completions by model and outcome (ok, error)",
    ["model", "outcome"],
    registry=REGISTRY,
)
GATEWAY_TOKENS = Counter(
    "gateway_tokens_total",
    "Tokens through the gateway by model (in: prompt, out: completion)",
    ["model", "direction"],
    registry=REGISTRY,
)
GATEWAY_LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Gateway chat completion time (to the end of the stream) by model",
    ["model"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GATEWAY_ERRORS = Counter(
    "gateway_errors_total",
    "Gateway chat completions that failed, by model and error code",
    ["model", "code"],
    registry=REGISTRY,
)
GATEWAY_RECORDS = Counter(
    "gateway_records_total",
    "Gateway calls recorded as rollout spans (written, dropped, failed)",
    ["result"],
    registry=REGISTRY,
)
