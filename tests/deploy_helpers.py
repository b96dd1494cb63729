"""What the deploy/ checks share: file locations, the app's env names and routes, PromQL metric names.

Plain functions (tests import them from here, never from a conftest).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from agentlightning.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S_DIR = DEPLOY / "k8s"
ALERTS_FILE = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
ENV_EXAMPLE = ROOT / ".env.example"

#: Environment variables app containers may set that are not Settings fields, and who reads them.
NON_SETTINGS_ENV = {"FORWARDED_ALLOW_IPS": "uvicorn: proxies trusted for X-Forwarded-For"}
#: Metrics that come from Prometheus itself or an exporter in deploy/docker-compose.yml, not the app.
EXTERNAL_METRICS = {
    "up": "Prometheus: scrape target health",
    "ALERTS": "Prometheus: firing/pending alerts",
    "pg_up": "postgres-exporter",
    "redis_up": "redis-exporter",
}
#: Grafana's built-in variables and the dashboards' own, with a value that keeps PromQL valid.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$agent_id": ".*",
}
#: Labels Prometheus attaches to every scraped series (plus relabelled ones of prometheus-kubernetes.yml).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "le", "quantile"}


def settings_env_names() -> set[str]:
    """Environment variable names the app reads: Settings fields in upper case (no prefix, no alias)."""
    assert not Settings.model_config.get("env_prefix"), "an env_prefix would change every name"
    return {name.upper() for name in Settings.model_fields}


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of a file (empty ones dropped)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, resource) for every Kubernetes resource under deploy/k8s (the Kustomization included)."""
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            yield path, doc


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource name, pod spec) of every workload under deploy/k8s."""
    for _, doc in k8s_documents():
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def substitute_grafana_variables(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced by values PromQL accepts."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    leftover = re.findall(r"\$\w+", expr)
    assert not leftover, f"unknown Grafana variable(s) {leftover} in {expr}"
    return expr


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every vector selector of a PromQL expression.

    Parsed by promql-parser (the Rust parser Prometheus-compatible tools use): a syntax error raises.
    """
    found: list[tuple[str, set[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {m.name for m in node.matchers.matchers}
            name = node.name
            if not name:
                name = next((m.value for m in node.matchers.matchers if m.name == "__name__"), "")
            found.append((name, labels - {"__name__"}))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def aggregation_labels(expr: str) -> set[str]:
    """Label names of every ``by (...)`` clause of a PromQL expression."""
    labels: set[str] = set()

    def visit(node: Any) -> bool:
        modifier = getattr(node, "modifier", None)
        if isinstance(node, promql_parser.AggregateExpr) and modifier is not None:
            if modifier.type == promql_parser.AggModifierType.By:
                labels.update(modifier.labels)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return labels


def alert_rules() -> list[dict[str, Any]]:
    """Every rule (alert and recording) of deploy/prometheus/alerts.yml."""
    doc = load_yaml_documents(ALERTS_FILE)[0]
    return [rule for group in doc["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    """Series names produced by the recording rules."""
    return {rule["record"] for rule in alert_rules() if "record" in rule}


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> parsed dashboard JSON."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def dashboard_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows' nested panels included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL with variables substituted) of every query."""
    queries = []
    for name, board in dashboards().items():
        for panel in dashboard_panels(board):
            for target in panel.get("targets", []):
                queries.append((name, panel["title"], substitute_grafana_variables(target["expr"])))
        for variable in board.get("templating", {}).get("list", []):
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable.get("definition", ""))
            if match:
                queries.append((name, f"variable {variable['name']}", f'{match.group(1)}{{{match.group(2)}!=""}}'))
    return queries


def all_promql() -> list[tuple[str, str]]:
    """(where, expression) of every alert, recording rule and dashboard query."""
    exprs = [(f"alerts.yml {rule.get('alert') or rule.get('record')}", str(rule["expr"])) for rule in alert_rules()]
    exprs += [(f"{board} / {title}", expr) for board, title, expr in dashboard_queries()]
    return exprs


def route_table(app: Any) -> dict[str, list[Any]]:
    """Full path -> the API routes registered at it (through included routers, any FastAPI version)."""
    from fastapi.routing import APIRoute

    table: dict[str, list[Any]] = {}
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI versions that flatten included routers into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                table.setdefault(route.path, []).append(route)
        return table
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            table.setdefault(str(context.path), []).append(route)
    return table
