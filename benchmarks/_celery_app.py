"""The Celery side of ``task_throughput.py``: one task that makes the same HTTP call to the
scripted LLM as an agent task, with the guarantees Celery users turn on (``acks_late``, results
stored in Redis).

Configured by environment: ``BENCH_BROKER_URL`` (Redis), ``BENCH_LLM_URL`` (the scripted LLM's
``/v1`` base).  Started by the benchmark as ``celery -A benchmarks._celery_app worker``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from celery import Celery

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
LLM_URL = os.environ.get("BENCH_LLM_URL", "http://127.0.0.1:9999/v1")

app = Celery("agl_bench", broker=BROKER, backend=BROKER)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_http: httpx.Client | None = None


@app.task(name="bench.run_agent_task")
def run_agent_task(description: str) -> dict[str, Any]:
    """One chat completion, like an agent task without tools; returns the answer."""
    global _http
    if _http is None:
        _http = httpx.Client(base_url=LLM_URL, timeout=30)
    r = _http.post(
        "/chat/completions",
        json={"model": "fake-model", "messages": [{"role": "user", "content": description}]},
    )
    r.raise_for_status()
    return {"answer": r.json()["choices"][0]["message"]["content"]}
