"""The one configuration object, read from environment variables and ``.env``."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "agent-lightning-development-secret-do-not-use"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./agentlightning.db"


def default_data_dir() -> str:
    """Where the embedded default keeps its files: ``$XDG_DATA_HOME/agentlightning`` (usually
    ``~/.local/share/agentlightning``), never the source tree."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "agentlightning")


#: Admin passwords that production mode refuses.
WEAK_ADMIN_PASSWORDS = frozenset({"admin", "password", "changeme", "change-me", "agentlightning", "secret"})
MIN_PRODUCTION_SECRET_LENGTH = 32


class LLMProviderSetting(BaseModel):
    """One admin-managed OpenAI-compatible upstream (an entry of ``LLM_PROVIDERS``)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key: str | None = None
    model: str | None = None
    #: Model names the OpenAI-compatible gateway (``/v1``) routes to this upstream; a request may
    #: also name ``<provider>/<model>``. Empty: only ``model`` (when set) and the prefixed form.
    models: list[str] = Field(default_factory=list)


class SqlDataSource(BaseModel):
    """A database the ``sql_query`` tool may read (an entry of ``SQL_DATA_SOURCES``).

    ``url`` must connect as a role that can only ``SELECT`` the listed ``tables`` (on PostgreSQL,
    ``agentlightning sql create-reader`` makes one); a plain URL string declares no tables.
    """

    model_config = ConfigDict(extra="forbid")

    url: str
    tables: list[str] = Field(default_factory=list)
    statement_timeout_seconds: float = Field(default=5.0, gt=0, le=300)


def _default_local_model_dir() -> str:
    """``$XDG_CACHE_HOME/agentlightning/models`` (``~/.cache/...``): the local model's data dir."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "agentlightning", "models")


class Settings(BaseSettings):
    """Every setting of the platform; field names are the environment variable names."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    agl_env: Literal["development", "production", "test"] = "development"

    # Storage
    #: Folder of the embedded default's files: the SQLite database, the vector index snapshot and RL
    #: artifacts go under it unless DATABASE_URL, KNOWLEDGE_INDEX_DIR or RL_ARTIFACTS_DIR say otherwise
    #: (default: $XDG_DATA_HOME/agentlightning, usually ~/.local/share/agentlightning).
    agl_data_dir: str = Field(default_factory=default_data_dir)
    #: Default: a SQLite file in AGL_DATA_DIR (``agentlightning.db``).
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=20, ge=1)
    database_max_overflow: int = Field(default=20, ge=0)
    redis_url: str | None = None
    #: Prefix of pub/sub channels, so several deployments (or test runs) can share one Redis.
    agl_events_prefix: str = "agl"

    # Auth
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_issuer: str = "agent-lightning"
    jwt_access_ttl_seconds: int = Field(default=900, ge=10)
    jwt_refresh_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    agl_admin_username: str = "admin"
    agl_admin_password: str | None = None
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    #: Seconds a valid API key is remembered per process (no query per call; a disabled user or a
    #: changed role still counts at once, a revoked key within these seconds elsewhere). 0: off.
    auth_api_key_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    # Gateway
    rate_limit_default: str = "600/minute"
    rate_limit_anonymous: str = "120/minute"
    rate_limit_login: str = "20/minute"
    cors_origins: list[str] = Field(default_factory=list)
    #: Failed logins one username may have from all addresses before addresses that never logged
    #: in to it successfully are refused (429) until the window slides (see docs/auth.md).
    login_failures_per_account: str = "10/15 minutes"
    #: Failed logins for one username from one address before that address is refused for it.
    login_failures_per_account_address: str = "5/15 minutes"
    #: Largest request body accepted, in bytes; larger bodies get 413 PAYLOAD_TOO_LARGE.
    max_request_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: Who may read /docs, /redoc and /openapi.json: ``public``, ``admin`` (an admin's token) or
    #: ``off``. Unset: public, except ``admin`` in production.
    agl_docs_access: Literal["public", "admin", "off"] | None = None
    #: Who may read ``/metrics`` on the API port (same values; unset: public, ``admin`` in production).
    agl_metrics_access: Literal["public", "admin", "off"] | None = None
    #: Also serve ``/metrics`` without authentication on this separate port (for a scraper on a
    #: private network); unset: no separate port.
    agl_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Verified access-token claims kept in memory (by token hash) so a token is verified once.
    auth_claims_cache_size: int = Field(default=10_000, ge=0)

    # LLM
    #: The default upstream (provider ``default``; ``auto`` uses it when set).
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    #: More admin-managed upstreams agents may name: ``{"name": {"base_url", "api_key", "model"}}``.
    llm_providers: dict[str, LLMProviderSetting] = Field(default_factory=dict)
    #: Hosts an agent's own ``base_url`` (with its own key) may point at; empty: none.
    llm_custom_allowed_hosts: list[str] = Field(default_factory=list)
    #: Ports (or ``"low-high"`` ranges) of those upstreams.
    llm_custom_allowed_ports: list[int | str] = Field(default_factory=lambda: list[int | str]([443]))
    llm_model: str = "smollm2-135m-instruct"
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)
    #: HTTP client for the runtime's calls to the platform's upstreams: "aiohttp" = the pooled client
    #: the gateway forwards with; "httpx" = the ``openai`` SDK's own client (honours proxies);
    #: "auto" = aiohttp unless the environment sets a proxy.
    llm_http_client: Literal["auto", "httpx", "aiohttp"] = "auto"

    # OpenAI-compatible gateway (agentlightning.gateway; /v1/chat/completions, /v1/models)
    #: Serve the embedded local model through /v1 (as ``local`` and its catalogue name).
    gateway_local_model: bool = True
    #: Upstream (an ``LLM_PROVIDERS`` name, ``default`` or ``local``) for model names no upstream
    #: lists; unset: such a model is a 404 ``model_not_found``.
    gateway_fallback_provider: str | None = None
    #: Defaults of an API key without a gateway policy of its own (admins set one per key).
    gateway_default_rate_limit: str = "600/minute"
    #: Tokens (prompt + completion) one key may use per ``gateway_budget_window``; 0: unlimited.
    gateway_default_token_budget: int = Field(default=0, ge=0)
    gateway_budget_window: Literal["minute", "hour", "day", "month"] = "day"
    #: Largest /v1 request body (bytes) a key may send unless its policy says otherwise.
    gateway_max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Seconds an upstream may take to answer (to its first byte for streams, then between chunks).
    gateway_upstream_timeout_seconds: float = Field(default=120.0, gt=0)
    #: Seconds a key's policy and an agent's promoted resources are kept in memory per process.
    gateway_cache_seconds: float = Field(default=3.0, ge=0)
    #: Calls waiting to be recorded as rollout spans; beyond it the oldest wait is dropped (counted).
    gateway_record_queue_size: int = Field(default=10_000, ge=10)
    #: Spans written per batch by the recorder.
    gateway_record_batch_size: int = Field(default=200, ge=1)
    #: Seconds the recorder gathers calls before writing them (one write for many calls).
    gateway_record_interval_seconds: float = Field(default=0.25, ge=0, le=60)
    #: Record prompts and responses of /v1 calls as rollout spans (token counts are always kept).
    gateway_record_calls: bool = True

    # Agents: task workers, runtime and tools (agentlightning.agents)
    #: Run task workers inside ``serve`` (in addition to any ``agentlightning worker`` processes).
    agent_workers_in_api: bool = True
    agent_workers_min: int = Field(default=1, ge=0)
    #: Tasks one worker runs at once, at most.  Unset: 8 when agents run on the embedded local model
    #: (it answers one request at a time), 64 with an LLM upstream (``LLM_BASE_URL``), where a task
    #: holds its slot while it waits on the model.
    agent_workers_max: int | None = Field(default=None, ge=1)
    agent_task_lease_seconds: float = Field(default=30.0, gt=0)
    agent_task_max_attempts: int = Field(default=3, ge=1)
    agent_poll_interval_seconds: float = Field(default=1.0, gt=0)
    #: How often an open WebSocket re-checks its token (a revoked token's socket closes with 4401).
    ws_reauth_seconds: float = Field(default=5.0, gt=0)
    agent_shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    #: Event loop of ``agentlightning worker``: "auto" = uvloop when installed (as uvicorn does for
    #: the API), else asyncio's own.
    agent_worker_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    agent_max_steps: int = Field(default=6, ge=1)
    agent_memory_window: int = Field(default=20, ge=0)
    #: Python modules imported at start-up that register user tools.
    agent_tool_modules: list[str] = Field(default_factory=list)
    # Workflows (agentlightning.workflows; see docs/workflows.md)
    #: Run the workflow engine inside ``serve`` (it advances runs of every workflow under leases).
    workflow_engine_enabled: bool = True
    #: How often the engine claims runs, renews its leases and looks at runs due (events wake it sooner).
    workflow_poll_interval_seconds: float = Field(default=1.0, gt=0)
    #: A run whose engine stops renewing for this long is taken over by another engine (or the next start).
    workflow_lease_seconds: float = Field(default=30.0, gt=0)
    #: Runs one engine advances at the same time.
    workflow_engine_concurrency: int = Field(default=32, ge=1, le=1024)
    # Embedded local model (agentlightning.agents.llm.local; see docs/local-model.md)
    #: Which embedded model serves agents when no LLM_BASE_URL is set.
    local_model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"] = "qwen2.5-coder-1.5b"
    #: Where the joined, SHA-256-verified GGUF files are kept (outside the source tree).
    local_model_dir: str = Field(default_factory=_default_local_model_dir)
    #: A GGUF file of your own instead of the catalogue's (used as is, not hash-checked).
    local_model_path: str | None = None
    local_model_max_new_tokens: int = Field(default=512, ge=1)
    #: Context window (tokens) of each generation slot: prompt + tools + conversation + answer.
    local_model_context: int = Field(default=4096, ge=512, le=32768)
    #: CPU threads of one generation (0 = every core but one, at least one).
    local_model_threads: int = Field(default=0, ge=0)
    #: Generation slots sharing the one loaded model; requests beyond them wait in a FIFO queue.
    local_model_parallel: int = Field(default=1, ge=1, le=16)
    sandbox_timeout_seconds: float = Field(default=10.0, gt=0)
    sandbox_memory_mb: int = Field(default=256, ge=32)
    #: Size of the python tool's scratch tmpfs (its total disk use).
    sandbox_disk_mb: int = Field(default=16, ge=1, le=4096)
    sandbox_max_processes: int = Field(default=16, ge=1)
    #: Interpreter run inside the sandbox (default: the server's base interpreter, no site-packages).
    sandbox_python: str | None = None
    #: bubblewrap executable; without it the python tool refuses to run.
    sandbox_bwrap: str = "bwrap"
    #: A root server runs each sandbox as a throwaway uid from [base, base + 60000).
    sandbox_uid_base: int = Field(default=200_000, ge=1000)
    #: Read-only data sources of the ``sql_query`` tool (JSON in the env):
    #: ``{"sales_db": {"url": "postgresql://agl_reader_sales:...@db/sales", "tables": ["sales"]}}``.
    sql_data_sources: dict[str, SqlDataSource] = Field(default_factory=dict)
    sql_max_rows: int = Field(default=200, ge=1)
    http_tool_enabled: bool = False
    http_tool_allowed_hosts: list[str] = Field(default_factory=list)
    #: Ports (or ``"low-high"`` ranges) the http_request tool may reach.
    http_tool_allowed_ports: list[int | str] = Field(default_factory=lambda: list[int | str]([80, 443]))
    #: Networks (CIDR) outbound calls may reach although they are not public (e.g. an internal
    #: vLLM at ``10.0.0.0/8``). Empty: only public unicast addresses.
    egress_allowed_networks: list[str] = Field(default_factory=list)

    # Knowledge base (agentlightning.knowledge)
    #: Full-text matches scored per PostgreSQL search: more ranks common terms more completely, slower.
    knowledge_rank_candidates: int = Field(default=1000, ge=10, le=1_000_000)
    #: Warm the in-process vector index at server start and keep it caught up in the background.
    knowledge_index_warmup: bool = True
    #: Seconds between background catch-ups of the in-process vector index.
    knowledge_index_sync_seconds: float = Field(default=30.0, gt=0)
    #: Where the in-process vector index is saved so a restart reloads it instead of rebuilding
    #: (empty: never saved). Validated against the database on reload. Default: AGL_DATA_DIR/knowledge.
    knowledge_index_dir: str = "./data/knowledge"
    #: Seconds between snapshots of the in-process vector index (when it changed).
    knowledge_index_snapshot_seconds: float = Field(default=600.0, gt=0)

    # Distributed RL
    ray_address: str | None = None

    # RL orchestrator (agentlightning.rl)
    #: Training sessions this process runs at once; more experiments wait in ``queued``.
    rl_max_concurrent_sessions: int = Field(default=10, ge=1)
    #: Where checkpoints and final models are written (shared storage when several hosts serve).
    #: Default: AGL_DATA_DIR/rl.
    rl_artifacts_dir: str = "./data/rl"
    #: Embed the built-in suite's knowledge documents for semantic search when installing the suite
    #: (``rl suite install``); without it they are found by full-text search only.
    rl_suite_embed_knowledge: bool = True
    #: Module prefixes users may register Gymnasium environments from (``module:Class``).
    rl_env_allowed_modules: list[str] = Field(default_factory=list)
    #: A running experiment whose manager has not renewed its lease for this long is recovered.
    rl_lease_seconds: float = Field(default=30.0, gt=0)
    rl_poll_interval_seconds: float = Field(default=0.5, gt=0)
    #: Seconds a training run may take to checkpoint and stop when the server shuts down.
    rl_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    rl_report_interval_seconds: float = Field(default=1.0, gt=0)
    rl_torch_threads: int = Field(default=1, ge=1)
    #: CPUs each Ray training task reserves.
    rl_ray_num_cpus: float = Field(default=1.0, gt=0)
    #: Resource guards on what one experiment may ask for (a 422 names the field beyond its cap).
    rl_max_total_timesteps: int = Field(default=50_000_000, ge=1)
    rl_max_n_envs: int = Field(default=32, ge=1)
    #: Hidden layers of ``policy_kwargs.net_arch`` (per network), and units per layer.
    rl_max_net_layers: int = Field(default=8, ge=1)
    rl_max_layer_width: int = Field(default=1024, ge=1)
    #: Total hidden units x units of a policy's networks (a proxy of its weight count).
    rl_max_net_params: int = Field(default=4_000_000, ge=1)
    #: Rollout length per environment (``n_steps``) and ``n_steps * n_envs`` for on-policy algorithms.
    rl_max_n_steps: int = Field(default=8192, ge=1)
    rl_max_rollout_size: int = Field(default=65_536, ge=1)
    rl_max_batch_size: int = Field(default=8192, ge=1)
    rl_max_buffer_size: int = Field(default=2_000_000, ge=1)
    #: Checkpoints one run may write (``total_timesteps / checkpoint_freq``).
    rl_max_checkpoints: int = Field(default=10_000, ge=1)
    #: Seconds the validation dry run (building the env and model, in a child process) may take.
    rl_validation_timeout_seconds: float = Field(default=60.0, gt=0)
    #: Unfinished (created, queued or running) experiments one user may have at once.
    rl_max_active_experiments_per_user: int = Field(default=10, ge=1)

    # Auto-RL (agentlightning.rl.auto); the policy itself is the system config's ``auto_rl`` block
    #: Run the Auto-RL monitor in this process (one replica acts at a time, under a lease).
    auto_rl_monitor_enabled: bool = True
    #: Seconds between two looks of the monitor at every agent's rolling success rate.
    auto_rl_poll_seconds: float = Field(default=30.0, gt=0)
    #: The monitor's lease; another replica takes over once it expires.
    auto_rl_lease_seconds: float = Field(default=90.0, gt=0)
    #: Agents with an ``rl_performance_gain_percent`` series at most (the most recent promotions).
    auto_rl_gain_label_limit: int = Field(default=200, ge=1)
    #: Agent tasks an optimisation evaluates at once (the local model serves one at a time).
    auto_rl_eval_concurrency: int = Field(default=4, ge=1, le=64)
    #: Seconds between two sweeps of ``rewards`` for any an online bandit's listener did not learn
    #: (a failed write, a process stopped just after storing the reward).
    bandit_sweep_interval_seconds: float = Field(default=30.0, gt=0)

    # Input limits (agentlightning.validation)
    #: Encoded size (bytes) and nesting depth of one free-form JSON value: task ``context``, agent
    #: ``config``, knowledge ``metadata``, RL ``env_kwargs`` / ``hyperparameters``.
    input_json_max_bytes: int = Field(default=65_536, ge=64)
    input_json_max_depth: int = Field(default=16, ge=2, le=1000)

    # Tracing (OpenTelemetry; also on when OTEL_EXPORTER_OTLP_ENDPOINT is set)
    agl_otel_enabled: bool = False
    agl_otel_service_name: str = "agent-lightning"

    # Server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: Start the in-process background services (task workers, RL manager) with the API.
    agl_run_services: bool = True

    @field_validator("sql_data_sources", mode="before")
    @classmethod
    def _source_urls(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"url": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator(
        "redis_url",
        "llm_base_url",
        "ray_address",
        "agl_admin_password",
        "agl_docs_access",
        "agl_metrics_access",
        "agl_metrics_port",
        "agent_workers_max",
        "local_model_path",
        "gateway_fallback_provider",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _files_in_data_dir(self) -> Settings:
        """Paths left at their defaults live in AGL_DATA_DIR, not in the working directory."""
        data_dir = os.path.abspath(os.path.expanduser(self.agl_data_dir))
        self.agl_data_dir = data_dir
        if "database_url" not in self.model_fields_set:
            self.database_url = "sqlite+aiosqlite:///" + os.path.join(data_dir, "agentlightning.db")
        if "knowledge_index_dir" not in self.model_fields_set:
            self.knowledge_index_dir = os.path.join(data_dir, "knowledge")
        if "rl_artifacts_dir" not in self.model_fields_set:
            self.rl_artifacts_dir = os.path.join(data_dir, "rl")
        self.knowledge_index_dir = os.path.expanduser(self.knowledge_index_dir)
        self.rl_artifacts_dir = os.path.expanduser(self.rl_artifacts_dir)
        return self

    @property
    def is_production(self) -> bool:
        """True when running with production safety checks."""
        return self.agl_env == "production"

    @property
    def docs_access(self) -> str:
        """Who may read the API docs and schema: ``public``, ``admin`` or ``off``."""
        return self.agl_docs_access or ("admin" if self.is_production else "public")

    @property
    def metrics_access(self) -> str:
        """Who may read ``/metrics`` on the API port: ``public``, ``admin`` or ``off``."""
        return self.agl_metrics_access or ("admin" if self.is_production else "public")

    @property
    def database_dialect(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"

    def production_problems(self) -> list[str]:
        """Reasons this configuration must not serve in production (empty when it may)."""
        problems: list[str] = []
        if self.jwt_secret == DEFAULT_JWT_SECRET:
            problems.append("JWT_SECRET is the built-in development default; set a random secret")
        elif len(self.jwt_secret) < MIN_PRODUCTION_SECRET_LENGTH:
            problems.append(f"JWT_SECRET is shorter than {MIN_PRODUCTION_SECRET_LENGTH} characters")
        password = self.agl_admin_password
        if password is not None and (password.lower() in WEAK_ADMIN_PASSWORDS or len(password) < 12):
            problems.append("AGL_ADMIN_PASSWORD is a default or shorter than 12 characters")
        return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
