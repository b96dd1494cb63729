"""Response serialisation: typed routes (``response_model=Envelope[X]``) against untyped ``dict`` routes.

Both kinds of route return the same envelopes (the health check, a user profile, a page of 50
agents) from one FastAPI app, driven in-process over ASGI (no network, no server), so the
difference is what FastAPI does with the return value. Untyped is how routes worked before they
declared models: ``jsonable_encoder`` in the envelope helper, ``jsonable_encoder`` again in
FastAPI, then ``json.dumps``. Typed is now: one Pydantic validation and ``dump_json`` straight to
bytes. The last line is ``envelope_serialisation_speedup=<untyped / typed time per request>``
(geometric mean over the three payloads).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder

from agentlightning.agents.schemas import AgentPage
from agentlightning.api.envelope import Envelope, ok, utc_timestamp
from agentlightning.auth.schemas import UserProfile
from agentlightning.core.schemas import HealthStatus

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import asgi_get  # noqa: E402

NOW = datetime.now(timezone.utc)
AGENT = {
    "id": 1,
    "name": "data-agent",
    "type": "data_agent",
    "description": "Analyses data",
    "config": {"system_prompt": "You analyse data. " * 10, "tools": ["calculator", "sql_query"], "temperature": 0.2},
    "config_version": 3,
    "status": "active",
    "created_at": NOW,
    "updated_at": NOW,
    "performance_metrics": {"success_rate": 0.9, "avg_execution_ms": 1200.5},
    "last_activity": NOW,
}
PAYLOADS: dict[str, tuple[type, Any]] = {
    "health": (HealthStatus, {"status": "healthy", "uptime_seconds": 1234.5}),
    "profile": (
        UserProfile,
        {
            "user_id": 7,
            "username": "alice",
            "role": "developer",
            "is_active": True,
            "created_at": NOW.isoformat(),
            "last_login_at": NOW.isoformat(),
            "permissions": ["agent:*", "rl:*", "workflow:*", "knowledge:*", "system:read"],
            "auth_method": "jwt",
        },
    ),
    "agents_page_50": (AgentPage, {"items": [AGENT] * 50, "total": 50, "page": 1, "page_size": 50}),
}


def untyped_ok(data: Any, message: str = "Operation completed successfully") -> dict[str, Any]:
    """The envelope helper as it was before routes declared models (encodes eagerly)."""
    return {
        "success": True,
        "data": jsonable_encoder(data),
        "message": message,
        "timestamp": utc_timestamp(),
        "request_id": None,
    }


def build_app() -> FastAPI:
    """One app with an untyped and a typed route per payload."""
    app = FastAPI()
    for name, (model, data) in PAYLOADS.items():

        async def untyped(data: Any = data) -> dict[str, Any]:
            return untyped_ok(data)

        async def typed(data: Any = data) -> dict[str, Any]:
            return ok(data)

        app.add_api_route(f"/untyped/{name}", untyped, methods=["GET"])
        app.add_api_route(f"/typed/{name}", typed, methods=["GET"], response_model=Envelope[model])  # type: ignore[valid-type]
    return app


async def _time(app: FastAPI, path: str, seconds: float) -> float:
    """Best-of-5 seconds per request over batches."""
    for _ in range(20):
        await asgi_get(app, path)
    best = math.inf
    per_round = seconds / 5
    for _ in range(5):
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < per_round:
            for _ in range(20):
                await asgi_get(app, path)
            n += 20
        best = min(best, (time.perf_counter() - started) / n)
    return best


async def main_async(seconds: float) -> float:
    """Time both kinds of route for each payload; return the geometric-mean speedup."""
    app = build_app()
    ratios = []
    for name in PAYLOADS:
        untyped = await _time(app, f"/untyped/{name}", seconds)
        typed = await _time(app, f"/typed/{name}", seconds)
        ratios.append(untyped / typed)
        print(f"{name:<16} untyped {untyped * 1e6:9.1f} us   typed {typed * 1e6:9.1f} us   {untyped / typed:5.2f}x")
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per route")
    args = parser.parse_args()
    speedup = asyncio.run(main_async(args.seconds))
    print(f"envelope_serialisation_speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
