"""API overhead: our server against a bare FastAPI app under the same uvicorn settings and load.

Both run as one uvicorn process (uvloop + httptools, access log off) on this machine; wrk drives
each with the same connections and duration. Ours serves authenticated ``GET /api/v2/health``
and ``GET /auth/profile`` (alternating, a real JWT, the rate limiter and metrics on) on the
embedded default (SQLite, in-process cache). The last line is
``api_overhead_ratio=<ours / bare requests per second>``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ChildServer, LoadResult, free_port, run_wrk  # noqa: E402

UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--workers",
    "1",
    "--log-level",
    "warning",
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--host",
    "127.0.0.1",
]
ADMIN_PASSWORD = "benchmark-admin-password"


def _report(name: str, result: LoadResult) -> None:
    print(
        f"{name:<38} {result.requests_per_second:>10.0f} req/s   p50 {result.p50_ms:7.2f} ms   "
        f"p99 {result.p99_ms:7.2f} ms   errors {result.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--embedded-only", action="store_true", help="skip the PostgreSQL+Redis run")
    args = parser.parse_args()
    load = {"seconds": args.seconds, "connections": args.connections}

    port = free_port()
    with ChildServer(
        [*UVICORN, "--port", str(port), "--app-dir", str(Path(__file__).parent), "_bare_app:app"],
        f"http://127.0.0.1:{port}/hello",
    ):
        run_wrk(f"http://127.0.0.1:{port}/hello", seconds=2, connections=args.connections)  # warm-up
        bare = run_wrk(f"http://127.0.0.1:{port}/hello", **load)

    embedded = _measure_ours("sqlite+aiosqlite:///{tmp}/bench.db", "", args, load)
    production = None
    if not args.embedded_only:
        database = _create_postgres_database()
        try:
            production = _measure_ours(database, args.redis_url, args, load)
        finally:
            _drop_postgres_database(database)

    print(
        f"load: wrk, 1 thread, {args.connections} connections, {args.seconds} s per run; uvicorn 1 worker, uvloop+httptools"
    )
    _report("bare FastAPI GET /hello", bare)
    results = [bare]
    for label, measured in (("SQLite", embedded), ("PostgreSQL+Redis", production)):
        if measured is None:
            continue
        for name, result in measured.items():
            _report(f"ours/{label} {name}", result)
            results.append(result)
    if any(r.errors for r in results):
        sys.exit("errors during the run; the figures are not valid")
    # The headline figure is the embedded default, the configuration `make serve` runs.
    print(f"api_overhead_ratio={embedded['health+profile'].requests_per_second / bare.requests_per_second:.3f}")


def _create_postgres_database() -> str:
    import asyncio
    import uuid

    import asyncpg

    name = f"agl_bench_{uuid.uuid4().hex[:8]}"

    async def _create() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(_create())
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _drop_postgres_database(url: str) -> None:
    import asyncio

    import asyncpg

    async def _drop() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await conn.close()

    asyncio.run(_drop())


def _measure_ours(
    database_url: str, redis_url: str, args: argparse.Namespace, load: dict[str, int]
) -> dict[str, LoadResult]:
    """Serve our app on the given storage and drive health, profile and both alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATABASE_URL": database_url.replace("{tmp}", tmp),
            "REDIS_URL": redis_url,
            "AGL_EVENTS_PREFIX": "aglbench",
            "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AGL_RUN_SERVICES": "false",
            # The limiter still runs on every request; the quota is just out of the benchmark's reach.
            "RATE_LIMIT_DEFAULT": "1000000000/minute",
            "RATE_LIMIT_ANONYMOUS": "1000000000/minute",
        }
        from agentlightning.storage.migrate import upgrade

        upgrade(env["DATABASE_URL"])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with ChildServer(
            [*UVICORN, "--port", str(port), "--factory", "agentlightning.api.app:create_app"],
            f"{base}/api/v2/health",
            env=env,
        ):
            token = httpx.post(f"{base}/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()[
                "data"
            ]["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            script = Path(tmp) / "alternate.lua"
            script.write_text(
                'local paths = {"/api/v2/health", "/auth/profile"}\nlocal i = 0\n'
                "request = function()\n  i = i + 1\n  return wrk.format(nil, paths[(i % 2) + 1])\nend\n"
            )
            run_wrk(f"{base}/api/v2/health", seconds=2, connections=args.connections, headers=auth)  # warm-up
            health = run_wrk(f"{base}/api/v2/health", headers=auth, **load)
            profile = run_wrk(f"{base}/auth/profile", headers=auth, **load)
            mixed = run_wrk(f"{base}/", headers=auth, script=script, **load)
    return {"GET /api/v2/health": health, "GET /auth/profile": profile, "health+profile": mixed}


if __name__ == "__main__":
    main()
