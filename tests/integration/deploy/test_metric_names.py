"""Every metric an alert, recording rule or Grafana panel of deploy/ queries is one the app exports.

The app runs in-process on PostgreSQL + Redis with a worker pool; after a login, an agent list, a
knowledge search and a task that runs to completion, ``/metrics`` is scraped and parsed with
prometheus-client's own parser. Each PromQL expression is parsed with promql-parser and each selector's
metric name (and matched label names) is looked up in the scrape. Metrics the app declares but that
have no sample after this traffic are listed, and must be among the ones explained below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from agentlightning.agents.pool import WorkerPool
from tests.deploy_helpers import (
    EXTERNAL_METRICS,
    TARGET_LABELS,
    aggregation_labels,
    all_promql,
    recorded_names,
    selectors,
)
from tests.helpers import unique
from tests.integration.agents.helpers import create_agent, wait_for_task

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("_sum", "_count", ""),
}

#: Referenced metrics that may have no sample after the test's traffic, and why.
EXPECTED_UNSAMPLED = {
    "rl_sessions_total": "no RL training runs in this test",
    "rl_training_duration_seconds": "no RL training runs in this test",
    "rl_performance_gain_percent": "set only when an RL change is promoted",
    "http_rate_limited_total": "no request is refused with 429 here",
    "knowledge_search_duration_seconds_bucket": "only searches that reach the database are timed",
    "agent_active_count": "set by the agent status endpoint",
    "gateway_requests_total": "no call goes through the /v1 gateway here (tests/integration/gateway drive it)",
    "gateway_tokens_total": "no call goes through the /v1 gateway here",
    "gateway_records_total": "no call goes through the /v1 gateway here",
    "gateway_errors_total": "no call goes through the /v1 gateway here",
    "gateway_request_duration_seconds_bucket": "no call goes through the /v1 gateway here",
}


def exported_series(text: str) -> tuple[dict[str, set[str]], set[str]]:
    """(series name the app declares -> its label names, series names that have samples)."""
    declared: dict[str, set[str]] = {}
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        labels: set[str] = set()
        for sample in family.samples:
            labels.update(sample.labels)
            sampled.add(sample.name)
        for suffix in _SUFFIXES.get(family.type, ("",)):
            declared[family.name + suffix] = labels
    return declared, sampled


async def test_every_referenced_metric_is_exported(
    app: FastAPI, client: httpx.AsyncClient, login: Callable[[str], Awaitable[dict[str, str]]]
) -> None:
    admin = await login("admin")  # a login
    assert (await client.get("/api/v2/agents", headers=admin)).status_code == 200  # an agent list
    search = await client.get("/api/v2/knowledge/search", params={"q": "deploy", "mode": "fulltext"}, headers=admin)
    assert search.status_code == 200, search.text  # a knowledge search
    agent = await create_agent(client, admin, unique("deploy"), config={"cache": False})
    pool = WorkerPool(app.state.ctx.settings)
    await pool.start(app.state.ctx)
    try:
        assign = await client.post(
            "/api/v2/agents/assign", json={"task": "say hello", "agent_id": agent["id"]}, headers=admin
        )
        assert assign.status_code == 202, assign.text  # a task assign, run by a worker
        task = await wait_for_task(client, admin, assign.json()["task_id"], timeout=120)
        assert task["status"] == "completed", task
    finally:
        await pool.stop()
    assert (await client.get("/api/v2/agents/status", headers=admin)).status_code == 200
    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    declared, sampled = exported_series(scrape.text)

    recorded = recorded_names()
    unknown: list[str] = []
    bad_labels: list[str] = []
    unsampled: set[str] = set()
    for where, expr in all_promql():
        for name, labels in selectors(expr):
            if name in EXTERNAL_METRICS or name in recorded:
                continue
            if name not in declared:
                unknown.append(f"{where}: {name}")
                continue
            if name not in sampled:
                unsampled.add(name)
            known = declared[name] | TARGET_LABELS
            if declared[name] or name in sampled:
                bad_labels += [f"{where}: {name}{{{label}}}" for label in labels - known]
    assert unknown == [], "metrics the app does not export"
    assert bad_labels == [], "label names the metric does not carry"
    print(f"\nreferenced metrics without samples after the test traffic: {sorted(unsampled)}")
    assert unsampled <= set(EXPECTED_UNSAMPLED), sorted(unsampled - set(EXPECTED_UNSAMPLED))


def test_group_by_labels_exist_somewhere() -> None:
    """Every ``by (...)`` label is one of the app's labels or a target label (typos fail here)."""
    from agentlightning.observability.metrics import REGISTRY

    app_labels: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the registry's own index
        app_labels.update(getattr(collector, "_labelnames", ()))
    for where, expr in all_promql():
        unknown = aggregation_labels(expr) - app_labels - TARGET_LABELS
        assert not unknown, f"{where}: grouping by unknown label(s) {unknown}"
