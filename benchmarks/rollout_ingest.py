"""Rollout ingest: spans stored per second through ``POST /api/v2/rollouts`` (SDK/gateway clients).

The app runs in-process (ASGI, no network) on a fresh embedded SQLite database, or on the
PostgreSQL database given with ``--database-url`` (already migrated).  A plain user sends
batches of 10 rollouts with 20 LLM/tool spans and one reward each, as an instrumented agent's
exporter would; every batch is sent twice (a retry), and the second send must store nothing.
The last line is ``rollout_ingest_spans_per_second=<spans stored / second of the first sends>``.

    python benchmarks/rollout_ingest.py [--batches 30] [--database-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentlightning.api.app import create_app  # noqa: E402
from agentlightning.auth.service import create_user  # noqa: E402
from agentlightning.settings import Settings  # noqa: E402
from agentlightning.storage.migrate import upgrade  # noqa: E402

ROLLOUTS_PER_BATCH = 10
SPANS_PER_ROLLOUT = 20


def _batch() -> dict[str, Any]:
    rollouts = []
    for _ in range(ROLLOUTS_PER_BATCH):
        spans = []
        for i in range(SPANS_PER_ROLLOUT):
            kind = "llm" if i % 2 == 0 else "tool"
            span: dict[str, Any] = {"span_id": uuid.uuid4().hex, "kind": kind, "name": f"{kind}-{i}"}
            if kind == "llm":
                span |= {
                    "input": {"messages": [{"role": "user", "content": "What is 2 + 2? " * 20}]},
                    "output": {"content": "4"},
                    "model": "bench-model",
                    "prompt_tokens": 120,
                    "completion_tokens": 3,
                    "latency_ms": 250.0,
                }
            else:
                span |= {"input": {"arguments": {"expression": "2+2"}}, "output": {"result": 4}, "latency_ms": 1.5}
            spans.append(span)
        rollouts.append({"id": uuid.uuid4().hex, "spans": spans, "rewards": [{"value": 1.0}]})
    return {"rollouts": rollouts}


async def _run(database_url: str, batches: int) -> float:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        agl_env="test",
        database_url=database_url,
        redis_url=None,
        jwt_secret="bench-secret-" + "x" * 40,
        bcrypt_rounds=4,
        rate_limit_default="1000000/minute",
        agl_run_services=False,
        agl_admin_password="bench-admin-password-long",
    )
    app = create_app(settings)
    async with LifespanManager(app):
        username, password = f"bench-{uuid.uuid4().hex[:8]}", "bench-password-long"
        await create_user(app.state.ctx, username, password, "user")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            login = await client.post("/auth/login", json={"username": username, "password": password})
            headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
            bodies = [_batch() for _ in range(batches)]
            await client.post("/api/v2/rollouts", json=_batch(), headers=headers)  # warm-up
            stored, elapsed = 0, 0.0
            for body in bodies:
                started = time.perf_counter()
                response = await client.post("/api/v2/rollouts", json=body, headers=headers)
                elapsed += time.perf_counter() - started
                assert response.status_code == 200, response.text
                stored += response.json()["data"]["spans_added"]
                retry = await client.post("/api/v2/rollouts", json=body, headers=headers)
                assert retry.json()["data"]["spans_added"] == 0, retry.text  # idempotent
    expected = batches * ROLLOUTS_PER_BATCH * SPANS_PER_ROLLOUT
    assert stored == expected, (stored, expected)
    print(f"batches={batches} spans={stored} seconds={elapsed:.2f} ms_per_batch={elapsed / batches * 1000:.1f}")
    return stored / elapsed


def main() -> None:
    """Measure and print the figure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="a migrated database (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agl-bench-") as tmp:
        url = args.database_url
        if url is None:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
        rate = asyncio.run(_run(url, args.batches))
    print(f"rollout_ingest_spans_per_second={rate:.0f}")


if __name__ == "__main__":
    main()
