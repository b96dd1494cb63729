"""Writes the four Grafana dashboards of the spec into deploy/grafana/dashboards/ (JSON).

Run ``python deploy/grafana/build_dashboards.py`` after editing; a test checks that the committed
JSON equals this script's output and that every metric a panel queries is one the app exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
API = 'job=~"agent-lightning-api|agent-lightning-rl"'


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        """The gridPos of the next panel."""
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = {"x": self.x, "y": self.y, "w": width, "h": height}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def row(self, title: str) -> dict[str, Any]:
        """A full-width row header."""
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel = {"type": "row", "title": title, "id": self.ids(), "collapsed": False, "panels": []}
        panel["gridPos"] = {"x": 0, "y": self.y, "w": 24, "h": 1}
        self.y += 1
        return panel

    def ids(self) -> int:
        """A fresh panel id."""
        self.next_id += 1
        return self.next_id - 1


def _targets(queries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
        for i, (expr, legend) in enumerate(queries)
    ]


def _thresholds(steps: list[tuple[float | None, str]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def panel(
    layout: Layout,
    kind: str,
    title: str,
    queries: list[tuple[str, str]],
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    description: str = "",
    thresholds: list[tuple[float | None, str]] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    instant: bool = False,
) -> dict[str, Any]:
    """One panel (timeseries, stat, gauge, bargauge or table) on the Prometheus data source."""
    defaults: dict[str, Any] = {"unit": unit}
    if thresholds:
        defaults["thresholds"] = _thresholds(thresholds)
        defaults["color"] = {"mode": "thresholds"} if kind != "timeseries" else {"mode": "palette-classic"}
        if kind == "timeseries":
            defaults["custom"] = {"thresholdsStyle": {"mode": "line+area"}}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    targets = _targets(queries)
    if instant:
        for target in targets:
            target["instant"] = True
            target["format"] = "table"
    result: dict[str, Any] = {
        "id": layout.ids(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(width, height),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": targets,
    }
    return result


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]], variables=None) -> dict:  # noqa: ANN001
    """A dashboard document as Grafana's provisioning reads it."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["agent-lightning"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables or []},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["agent-lightning"], "asDropdown": True, "title": "Agent Lightning"}],
        "panels": panels,
    }


def _query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


RESOURCE_STEPS = [(None, "green"), (85, "orange"), (95, "red")]
DISK_STEPS = [(None, "green"), (80, "orange"), (90, "red")]


def system_overview() -> dict[str, Any]:
    """1. System resources, API traffic and latency, agents and tasks, database and cache."""
    lay = Layout()
    p: list[dict[str, Any]] = [lay.row("System resources")]
    for metric, title, steps in (
        ("system_cpu_usage_percent", "CPU", RESOURCE_STEPS),
        ("system_memory_usage_percent", "Memory", RESOURCE_STEPS),
        ("system_disk_usage_percent", "Disk (data directory)", DISK_STEPS),
    ):
        p.append(
            panel(
                lay,
                "gauge",
                f"{title} (max over hosts)",
                [(f"max({metric})", title)],
                "percent",
                4,
                6,
                thresholds=steps,
                minimum=0,
                maximum=100,
                instant=False,
            )
        )
    p.append(
        panel(
            lay,
            "timeseries",
            "Resource utilisation by host",
            [
                ("max by (instance) (system_cpu_usage_percent)", "CPU {{instance}}"),
                ("max by (instance) (system_memory_usage_percent)", "memory {{instance}}"),
                ("max by (instance) (system_disk_usage_percent)", "disk {{instance}}"),
            ],
            "percent",
            12,
            6,
            minimum=0,
            maximum=100,
        )
    )
    p.append(lay.row("API"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Request rate by endpoint",
            [
                (f"sum by (endpoint) (rate(http_requests_total{{{API}}}[$__rate_interval]))", "{{endpoint}}"),
            ],
            "reqps",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Response time (all endpoints)",
            [
                (
                    f"histogram_quantile(0.50, sum by (le) (rate(http_request_duration_seconds_bucket{{{API}}}[$__rate_interval])))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{API}}}[$__rate_interval])))",
                    "p95",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{API}}}[$__rate_interval])))",
                    "p99",
                ),
                (
                    f"sum(rate(http_request_duration_seconds_sum{{{API}}}[$__rate_interval])) / sum(rate(http_request_duration_seconds_count{{{API}}}[$__rate_interval]))",
                    "average",
                ),
            ],
            "s",
            12,
            description="The spec's target: under 200 ms on average.",
            thresholds=[(None, "green"), (0.2, "orange"), (0.5, "red")],
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Responses by status code",
            [
                (f"sum by (status_code) (rate(http_requests_total{{{API}}}[$__rate_interval]))", "{{status_code}}"),
            ],
            "reqps",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Rate-limited requests",
            [
                ("sum by (scope) (rate(http_rate_limited_total[$__rate_interval]))", "{{scope}}"),
            ],
            "reqps",
            12,
        )
    )
    p.append(lay.row("Agents and tasks"))
    p.append(
        panel(lay, "stat", "Active agents", [("sum(max by (type) (agent_active_count))", "active")], "short", 6, 6)
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Active agents by type",
            [("max by (type) (agent_active_count)", "{{type}}")],
            "short",
            6,
            6,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Task queue (pending by priority)",
            [("max by (priority) (task_queue_depth)", "{{priority}}")],
            "short",
            6,
            6,
            description="Pending tasks of active agents per priority (every replica reports the same database count).",
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Task runs by outcome",
            [
                ("sum by (status) (rate(agent_requests_total[$__rate_interval]))", "{{status}}"),
            ],
            "ops",
            6,
            6,
            description="Task throughput of the workers (completed, failed, retried).",
        )
    )
    p.append(lay.row("Database and cache"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Database connections in use (pool)",
            [
                ("sum by (instance) (postgres_connections_active)", "{{instance}}"),
            ],
            "short",
            8,
            description="Connections checked out of each process's pool (DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW).",
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Database queries per second",
            [
                ("sum(postgres_queries_per_second)", "all processes"),
                ("sum by (query_type) (rate(db_queries_total[$__rate_interval]))", "{{query_type}}"),
            ],
            "qps",
            8,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Query duration p95 by kind",
            [
                (
                    "histogram_quantile(0.95, sum by (query_type, le) (rate(postgres_query_duration_seconds_bucket[$__rate_interval])))",
                    "{{query_type}}",
                ),
            ],
            "s",
            8,
        )
    )
    p.append(
        panel(
            lay,
            "stat",
            "Cache hit rate",
            [("avg(redis_cache_hit_rate)", "hit rate")],
            "percentunit",
            6,
            6,
            thresholds=[(None, "red"), (0.5, "orange"), (0.7, "green")],
        )
    )
    p.append(panel(lay, "timeseries", "Redis memory", [("max(redis_memory_usage_bytes)", "used")], "bytes", 6, 6))
    p.append(panel(lay, "timeseries", "Redis clients", [("max(redis_connected_clients)", "clients")], "short", 6, 6))
    p.append(
        panel(
            lay,
            "timeseries",
            "Redis operations per second",
            [
                ("sum by (operation) (redis_operations_per_second)", "{{operation}}"),
            ],
            "ops",
            6,
            6,
        )
    )
    p.append(lay.row("OpenAI-compatible gateway (/v1)"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Gateway calls by model",
            [("sum by (model, outcome) (rate(gateway_requests_total[$__rate_interval]))", "{{model}} {{outcome}}")],
            "reqps",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Gateway tokens by model",
            [("sum by (model, direction) (rate(gateway_tokens_total[$__rate_interval]))", "{{model}} {{direction}}")],
            "short",
            12,
            description="Tokens per second: in = prompt, out = completion.",
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Gateway call time",
            [
                (
                    "histogram_quantile(0.50, sum by (le) (rate(gateway_request_duration_seconds_bucket[$__rate_interval])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.95, sum by (le) (rate(gateway_request_duration_seconds_bucket[$__rate_interval])))",
                    "p95",
                ),
            ],
            "s",
            12,
            description="To the end of the reply (the whole stream for streamed calls), upstream included.",
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Gateway errors and recording",
            [
                ("sum by (model, code) (rate(gateway_errors_total[$__rate_interval]))", "{{model}} {{code}}"),
                ("sum by (result) (rate(gateway_records_total{result!=\"written\"}[$__rate_interval]))", "spans {{result}}"),
            ],
            "reqps",
            12,
        )
    )
    return dashboard(
        "agl-system-overview",
        "Agent Lightning / System Overview",
        "Resource utilisation, API traffic, agents and tasks, database pool and cache.",
        p,
    )


def rl_performance() -> dict[str, Any]:
    """2. RL training sessions, improvement trends, algorithm comparison, training resources."""
    lay = Layout()
    p: list[dict[str, Any]] = [lay.row("Training sessions")]
    p.append(
        panel(
            lay,
            "stat",
            "Sessions finished (range)",
            [
                ("sum(increase(rl_sessions_total[$__range]))", "sessions"),
            ],
            "short",
            6,
            6,
        )
    )
    p.append(
        panel(
            lay,
            "stat",
            "Success rate (range)",
            [
                (
                    'sum(increase(rl_sessions_total{status="completed"}[$__range])) / sum(increase(rl_sessions_total{status=~"completed|failed"}[$__range]))',
                    "success",
                ),
            ],
            "percentunit",
            6,
            6,
            description="The spec's RL success rate target is 95%+.",
            thresholds=[(None, "red"), (0.9, "orange"), (0.95, "green")],
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Sessions by outcome",
            [
                ("sum by (status) (increase(rl_sessions_total[1h]))", "{{status}}"),
            ],
            "short",
            12,
            6,
        )
    )
    p.append(lay.row("Performance improvement"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Performance gain by agent",
            [
                ("max by (agent_id) (rl_performance_gain_percent)", "agent {{agent_id}}"),
            ],
            "percent",
            24,
            description="Improvement of each agent from its last promoted change.",
        )
    )
    p.append(lay.row("Algorithm comparison"))
    p.append(
        panel(
            lay,
            "bargauge",
            "Completed sessions by algorithm (range)",
            [
                ('sum by (algorithm) (increase(rl_sessions_total{status="completed"}[$__range]))', "{{algorithm}}"),
            ],
            "short",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "bargauge",
            "Success rate by algorithm (range)",
            [
                (
                    'sum by (algorithm) (increase(rl_sessions_total{status="completed"}[$__range])) / sum by (algorithm) (increase(rl_sessions_total{status=~"completed|failed"}[$__range]))',
                    "{{algorithm}}",
                ),
            ],
            "percentunit",
            12,
            minimum=0,
            maximum=1,
        )
    )
    p.append(lay.row("Training resources"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Training time of recent experiments",
            [
                ("topk(10, max by (experiment_id) (rl_training_duration_seconds))", "experiment {{experiment_id}}"),
            ],
            "s",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "CPU and memory of training hosts",
            [
                ('max by (instance) (system_cpu_usage_percent{job=~"agent-lightning-(rl|api)"})', "CPU {{instance}}"),
                (
                    'max by (instance) (system_memory_usage_percent{job=~"agent-lightning-(rl|api)"})',
                    "memory {{instance}}",
                ),
            ],
            "percent",
            12,
            minimum=0,
            maximum=100,
        )
    )
    return dashboard(
        "agl-rl-performance",
        "Agent Lightning / RL Performance",
        "RL training sessions, performance gains, algorithm comparison and training resources.",
        p,
    )


def agent_analytics() -> dict[str, Any]:
    """3. Per-agent performance, task completion, utilisation patterns, errors by type."""
    lay = Layout()
    sel = 'agent_id=~"$agent_id"'
    p: list[dict[str, Any]] = [lay.row("Agent performance")]
    p.append(
        panel(
            lay,
            "timeseries",
            "Task runs per agent",
            [
                (f"sum by (agent_id) (rate(agent_requests_total{{{sel}}}[$__rate_interval]))", "agent {{agent_id}}"),
            ],
            "ops",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Response time p95 per agent",
            [
                (
                    f"histogram_quantile(0.95, sum by (agent_id, le) (rate(agent_response_time_seconds_bucket{{{sel}}}[$__rate_interval])))",
                    "agent {{agent_id}}",
                ),
            ],
            "s",
            12,
            description="The spec's agent response time: 1-3 s.",
            thresholds=[(None, "green"), (3, "orange"), (5, "red")],
        )
    )
    p.append(lay.row("Task completion"))
    p.append(
        panel(
            lay,
            "bargauge",
            "Completion rate per agent (range)",
            [
                (
                    f'sum by (agent_id) (increase(agent_requests_total{{{sel}, status="completed"}}[$__range])) / sum by (agent_id) (increase(agent_requests_total{{{sel}, status=~"completed|failed"}}[$__range]))',
                    "agent {{agent_id}}",
                ),
            ],
            "percentunit",
            12,
            minimum=0,
            maximum=1,
            thresholds=[(None, "red"), (0.8, "orange"), (0.95, "green")],
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Average task time per agent",
            [
                (
                    f"sum by (agent_id) (rate(agent_response_time_seconds_sum{{{sel}}}[$__rate_interval])) / sum by (agent_id) (rate(agent_response_time_seconds_count{{{sel}}}[$__rate_interval]))",
                    "agent {{agent_id}}",
                ),
            ],
            "s",
            12,
        )
    )
    p.append(lay.row("Utilisation patterns"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Task runs per hour per agent",
            [
                (f"sum by (agent_id) (increase(agent_requests_total{{{sel}}}[1h]))", "agent {{agent_id}}"),
            ],
            "short",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Active agents by type",
            [("max by (type) (agent_active_count)", "{{type}}")],
            "short",
            12,
        )
    )
    p.append(lay.row("Errors"))
    p.append(
        panel(
            lay,
            "timeseries",
            "Failed and retried runs per agent",
            [
                (
                    f'sum by (agent_id, status) (rate(agent_requests_total{{{sel}, status=~"failed|retried"}}[$__rate_interval]))',
                    "agent {{agent_id}} {{status}}",
                ),
            ],
            "ops",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Agent API errors by status code",
            [
                (
                    'sum by (status_code, endpoint) (rate(http_requests_total{endpoint=~"/api/v2/(agents|tasks).*", status_code=~"[45].."}[$__rate_interval]))',
                    "{{status_code}} {{endpoint}}",
                ),
            ],
            "reqps",
            12,
        )
    )
    variables = [_query_variable("agent_id", "Agent", "label_values(agent_requests_total, agent_id)")]
    return dashboard(
        "agl-agent-analytics",
        "Agent Lightning / Agent Analytics",
        "Per-agent runs, completion rates and times, utilisation and errors.",
        p,
        variables,
    )


def system_health() -> dict[str, Any]:
    """4. Availability, error rates, resource thresholds and firing alerts, degradation."""
    lay = Layout()
    p: list[dict[str, Any]] = [lay.row("Service availability")]
    p.append(
        panel(
            lay,
            "stat",
            "API replicas up",
            [('sum(up{job="agent-lightning-api"})', "up")],
            "short",
            4,
            5,
            thresholds=[(None, "red"), (1, "orange"), (2, "green")],
        )
    )
    p.append(
        panel(
            lay,
            "stat",
            "Workers up",
            [('sum(up{job="agent-lightning-worker"})', "up")],
            "short",
            4,
            5,
            thresholds=[(None, "red"), (1, "green")],
        )
    )
    p.append(
        panel(
            lay,
            "stat",
            "PostgreSQL",
            [("min(pg_up)", "up")],
            "bool_on_off",
            4,
            5,
            thresholds=[(None, "red"), (1, "green")],
        )
    )
    p.append(
        panel(
            lay,
            "stat",
            "Redis",
            [("min(redis_up)", "up")],
            "bool_on_off",
            4,
            5,
            thresholds=[(None, "red"), (1, "green")],
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Targets up",
            [('up{job=~"agent-lightning-.*|postgres|redis"}', "{{job}} {{instance}}")],
            "short",
            8,
            5,
        )
    )
    p.append(lay.row("Error rate"))
    p.append(
        panel(
            lay,
            "timeseries",
            "5xx ratio",
            [("agl:http_error_ratio:rate5m", "{{job}}")],
            "percentunit",
            12,
            thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
            description="Alerts at 1% (15 min) and 5% (5 min).",
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Errors by endpoint and code",
            [
                (
                    'sum by (endpoint, status_code) (rate(http_requests_total{status_code=~"5..|429"}[$__rate_interval]))',
                    "{{status_code}} {{endpoint}}",
                ),
            ],
            "reqps",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Cache calls skipped (Redis unreachable)",
            [
                ("sum by (instance) (increase(cache_bypassed_total[5m]))", "{{instance}}"),
            ],
            "short",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Agent task failure ratio",
            [("agl:agent_task_failure_ratio:rate15m", "failed / finished")],
            "percentunit",
            12,
            thresholds=[(None, "green"), (0.2, "red")],
        )
    )
    p.append(lay.row("Resource thresholds"))
    p.append(
        panel(
            lay,
            "timeseries",
            "CPU",
            [("max by (instance) (system_cpu_usage_percent)", "{{instance}}")],
            "percent",
            8,
            thresholds=RESOURCE_STEPS,
            minimum=0,
            maximum=100,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Memory",
            [("max by (instance) (system_memory_usage_percent)", "{{instance}}")],
            "percent",
            8,
            thresholds=RESOURCE_STEPS,
            minimum=0,
            maximum=100,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Disk",
            [("max by (instance) (system_disk_usage_percent)", "{{instance}}")],
            "percent",
            8,
            thresholds=DISK_STEPS,
            minimum=0,
            maximum=100,
        )
    )
    p.append(
        panel(
            lay,
            "table",
            "Firing alerts",
            [('ALERTS{alertstate="firing"}', "{{alertname}}")],
            "short",
            24,
            7,
            instant=True,
        )
    )
    p.append(lay.row("Performance degradation"))
    p.append(
        panel(
            lay,
            "timeseries",
            "API p95 now vs a day ago",
            [
                ("agl:http_request_duration_seconds:p95_5m", "now {{job}}"),
                ("agl:http_request_duration_seconds:p95_5m offset 1d", "a day ago {{job}}"),
            ],
            "s",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Knowledge search p95 by mode",
            [
                (
                    "histogram_quantile(0.95, sum by (mode, le) (rate(knowledge_search_duration_seconds_bucket[$__rate_interval])))",
                    "{{mode}}",
                ),
            ],
            "s",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Database query p95",
            [
                (
                    "histogram_quantile(0.95, sum by (le) (rate(postgres_query_duration_seconds_bucket[$__rate_interval])))",
                    "p95",
                ),
            ],
            "s",
            12,
        )
    )
    p.append(
        panel(
            lay,
            "timeseries",
            "Knowledge vector index size",
            [("max by (instance) (knowledge_vector_index_size)", "{{instance}}")],
            "short",
            12,
        )
    )
    return dashboard(
        "agl-system-health",
        "Agent Lightning / System Health",
        "Availability, error rates, resource thresholds and firing alerts, performance degradation.",
        p,
    )


DASHBOARDS = {
    "system-overview.json": system_overview,
    "rl-performance.json": rl_performance,
    "agent-analytics.json": agent_analytics,
    "system-health.json": system_health,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2, sort_keys=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    """Write the dashboards."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT_DIR / name}")


if __name__ == "__main__":
    main()
