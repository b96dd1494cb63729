"""Gateway overhead: what ``/v1/chat/completions`` through the platform adds to a call, in ms.

One scripted OpenAI-compatible upstream that answers at once (``tests/fake_llm_server.py``, its
own process) and the platform (one uvicorn process: uvloop + httptools, access log off, the
embedded default storage unless ``--database-url``/``--redis-url``) routing ``fake-model`` to it.
The same client (one keep-alive ``httpx.Client``, one call at a time) alternates calls: straight
to the upstream, then through the gateway with an API key (authentication, the key's policy, rate
and token budget, forwarding, usage parsing, metrics, the span queued for recording), in the same
run. Non-streamed and streamed calls are measured; the headline is the difference of the medians
for non-streamed calls. The last line is ``gateway_overhead_ms_p50=<added ms per call>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, UVICORN, ChildServer, free_port  # noqa: E402

ADMIN_PASSWORD = "benchmark-admin-password"


def _time(client: httpx.Client, url: str, body: dict[str, object], headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = client.post(url, json=body, headers=headers)
    response.read()
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return elapsed * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="calls per path and mode")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--redis-url", default=None, help="default: the in-process cache")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        upstream_port = free_port()
        upstream = f"http://127.0.0.1:{upstream_port}/v1"
        database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/gateway-bench.db"
        from agentlightning.storage.migrate import upgrade

        upgrade(database_url)
        env = {
            "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
            "DATABASE_URL": database_url,
            "REDIS_URL": args.redis_url or "",
            "AGL_EVENTS_PREFIX": "aglgwbench",
            "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AGL_RUN_SERVICES": "false",
            "RATE_LIMIT_DEFAULT": "1000000000/minute",
            "RATE_LIMIT_ANONYMOUS": "1000000000/minute",
            "GATEWAY_DEFAULT_RATE_LIMIT": "1000000000/minute",
            "GATEWAY_LOCAL_MODEL": "false",
            "LLM_PROVIDERS": json.dumps({"fake": {"base_url": upstream, "models": ["fake-model"]}}),
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            ChildServer(
                [sys.executable, "-m", "tests.fake_llm_server", "--port", str(upstream_port)],
                f"{upstream}/models",
                env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
            ),
            ChildServer(
                [*UVICORN, "--port", str(port), "--factory", "agentlightning.api.app:create_app"],
                f"{base}/api/v2/health",
                env=env,
            ),
            httpx.Client(timeout=30) as client,
        ):
            token = client.post(f"{base}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            auth = {"Authorization": f"Bearer {token.json()['data']['access_token']}"}
            key = client.post(f"{base}/auth/api-keys", json={"name": "bench"}, headers=auth).json()["data"]["key"]
            gateway_headers = {"Authorization": f"Bearer {key}"}
            results: dict[str, list[float]] = {}
            for mode, extra in (("plain", {}), ("stream", {"stream": True})):
                body = {"model": "fake-model", "messages": [{"role": "user", "content": "Say hello"}], **extra}
                direct: list[float] = []
                through: list[float] = []
                for i in range(args.warmup + args.calls):
                    d = _time(client, f"{upstream}/chat/completions", body, {})
                    g = _time(client, f"{base}/v1/chat/completions", body, gateway_headers)
                    if i >= args.warmup:
                        direct.append(d)
                        through.append(g)
                results[f"{mode} direct"] = direct
                results[f"{mode} gateway"] = through
    for name, values in results.items():
        q = statistics.quantiles(values, n=100)
        print(
            f"{name:16s} p50 {statistics.median(values):7.3f} ms  p95 {q[94]:7.3f} ms  mean {statistics.fmean(values):7.3f} ms"
        )
    stream_added = statistics.median(results["stream gateway"]) - statistics.median(results["stream direct"])
    print(f"streamed: gateway adds {stream_added:.3f} ms per call (p50)")
    added = statistics.median(results["plain gateway"]) - statistics.median(results["plain direct"])
    print(f"gateway_overhead_ms_p50={added:.3f}")


if __name__ == "__main__":
    main()
