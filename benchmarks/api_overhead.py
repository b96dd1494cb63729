"""API overhead: our server against a bare FastAPI app under the same uvicorn settings and load.

Both run as one uvicorn process (uvloop + httptools, access log off) on this machine; wrk drives
each with the same connections and duration. Ours serves authenticated ``GET /api/v2/health``
and ``GET /auth/profile`` (alternating, a real JWT, the rate limiter and metrics on) on the
embedded default (SQLite, in-process cache) and, unless ``--embedded-only``, on PostgreSQL + Redis.

On a shared machine the load of other work drifts during a run, so the bare app and ours are
measured in alternating rounds (bare, ours, bare, ours, ...; both servers stay up) and each
ratio is the median of the per-round ratios. Each run also reads the server process's CPU time
(``/proc/<pid>/stat``, all its threads): requests per CPU-second is what one uvicorn worker
serves when it has a core to itself, and it barely moves with other work on the machine, where
requests per wall-clock second swing several-fold. The headline ratio uses it by default
(``--by wall`` uses requests per second). The last line is
``api_overhead_ratio=<ours / bare>`` on the embedded default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import UVICORN, ChildServer, LoadResult, asgi_get, free_port, run_wrk  # noqa: E402

ADMIN_PASSWORD = "benchmark-admin-password"


@dataclass
class Measured:
    """One wrk run and the server CPU time it cost."""

    load: LoadResult
    requests: int
    cpu_seconds: float

    @property
    def per_cpu_second(self) -> float:
        """Requests served per CPU-second of the server process."""
        return self.requests / max(self.cpu_seconds, 1e-9)

    def value(self, by: str) -> float:
        """The figure compared: requests per CPU-second or per wall-clock second."""
        return self.per_cpu_second if by == "cpu" else self.load.requests_per_second


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(url: str, pid: int, **kwargs: object) -> Measured:
    before = _cpu_seconds(pid)
    load = run_wrk(url, **kwargs)  # type: ignore[arg-type]
    cpu = _cpu_seconds(pid) - before
    return Measured(load, round(load.requests_per_second * kwargs["seconds"]), cpu)  # type: ignore[operator]


def _report(name: str, measured: Measured) -> None:
    result = measured.load
    print(
        f"{name:<46} {result.requests_per_second:>7.0f} req/s {measured.per_cpu_second:>7.0f} req/CPU-s   "
        f"p50 {result.p50_ms:7.2f} ms   p99 {result.p99_ms:7.2f} ms   errors {result.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/ours rounds per backend")
    parser.add_argument(
        "--by", choices=["cpu", "wall"], default="cpu", help="ratio of requests per server CPU-second or per second"
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="only count Python function calls per request in process (deterministic; embedded default)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--embedded-only", action="store_true", help="skip the PostgreSQL+Redis run")
    args = parser.parse_args()
    load = {"seconds": args.seconds, "connections": args.connections}
    if args.calls:
        _count_calls()
        return

    port = free_port()
    bare_url = f"http://127.0.0.1:{port}/hello"
    with ChildServer(
        [*UVICORN, "--port", str(port), "--app-dir", str(Path(__file__).parent), "_bare_app:app"], bare_url
    ) as bare_server:
        assert bare_server.process is not None
        bare = (bare_url, bare_server.process.pid)
        run_wrk(bare_url, seconds=2, connections=args.connections)  # warm-up
        embedded = _measure_ours("sqlite+aiosqlite:///{tmp}/bench.db", "", args, load, bare)
        production = None
        if not args.embedded_only:
            database = _create_postgres_database()
            try:
                production = _measure_ours(database, args.redis_url, args, load, bare)
            finally:
                _drop_postgres_database(database)

    print(
        f"load: wrk, 1 thread, {args.connections} connections, {args.seconds} s per run, {args.rounds} alternating "
        "rounds per backend; uvicorn 1 worker, uvloop+httptools; figures are medians over rounds"
    )
    errors = requests = 0
    ratios: dict[str, float] = {}
    for label, measured in (("SQLite", embedded), ("PostgreSQL+Redis", production)):
        if measured is None:
            continue
        _report(f"bare FastAPI GET /hello ({label} rounds)", _median(measured["bare"]))
        for name in ("GET /api/v2/health", "GET /auth/profile", "health+profile"):
            _report(f"ours/{label} {name}", _median(measured[name]))
        errors += sum(r.load.errors for results in measured.values() for r in results)
        requests += sum(r.requests for results in measured.values() for r in results)
        for by in ("wall", "cpu"):
            per_round = [o.value(by) / b.value(by) for o, b in zip(measured["health+profile"], measured["bare"])]
            median = statistics.median(per_round)
            if by == args.by:
                ratios[label] = median
            unit = "req/s" if by == "wall" else "req/CPU-s"
            print(f"ratio {label} by {unit}: rounds {', '.join(f'{r:.3f}' for r in per_round)} -> median {median:.3f}")
    # A loaded machine can time out a handful of requests (wrk counts them as errors); more is a fault.
    if errors > max(1, requests // 1000):
        sys.exit(f"{errors} errors in {requests} requests; the figures are not valid")
    if "PostgreSQL+Redis" in ratios:
        print(f"api_overhead_ratio_postgres_redis={ratios['PostgreSQL+Redis']:.3f}")
    # The headline figure is the embedded default, the configuration `make serve` runs.
    print(f"api_overhead_ratio={ratios['SQLite']:.3f}")


def _median(results: list[Measured]) -> Measured:
    """The run with the median requests per CPU-second."""
    return sorted(results, key=lambda r: r.per_cpu_second)[len(results) // 2]


def _count_calls() -> None:
    """Python function calls per request, in process (no server, no network): the same on every
    machine and under any load, so two commits can be compared on a busy machine."""
    import asyncio
    import cProfile
    import os
    import pstats

    from asgi_lifespan import LifespanManager

    async def count(app: object, path: str, headers: list[tuple[bytes, bytes]], n: int = 300) -> float:
        for _ in range(50):
            await asgi_get(app, path, headers)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await asgi_get(app, path, headers)
        profiler.disable()
        return pstats.Stats(profiler).total_calls / n  # type: ignore[attr-defined]

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(
                {
                    "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/calls.db",
                    "REDIS_URL": "",
                    "AGL_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "AGL_RUN_SERVICES": "false",
                    "RATE_LIMIT_DEFAULT": "1000000000/minute",
                    "RATE_LIMIT_ANONYMOUS": "1000000000/minute",
                }
            )
            from _bare_app import app as bare

            from agentlightning.api.app import create_app
            from agentlightning.storage.migrate import upgrade

            upgrade(os.environ["DATABASE_URL"])
            app = create_app()
            async with LifespanManager(app):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                    login = await client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
                headers = [
                    (b"host", b"t"),
                    (b"authorization", f"Bearer {login.json()['data']['access_token']}".encode()),
                ]
                base = await count(bare, "/hello", headers)
                health = await count(app, "/api/v2/health", headers)
                profile = await count(app, "/auth/profile", headers)
        print(f"python calls per request: bare {base:.0f}, health {health:.0f}, profile {profile:.0f}")
        print(f"api_overhead_calls_ratio={base / ((health + profile) / 2):.3f}")

    asyncio.run(main())


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
    database_url: str, redis_url: str, args: argparse.Namespace, load: dict[str, int], bare: tuple[str, int]
) -> dict[str, list[Measured]]:
    """Serve our app on the given storage; per round, drive the bare app then ours (health+profile)."""
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
        ) as server:
            assert server.process is not None
            pid = server.process.pid
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
            results: dict[str, list[Measured]] = {
                "bare": [],
                "GET /api/v2/health": [],
                "GET /auth/profile": [],
                "health+profile": [],
            }
            results["GET /api/v2/health"].append(_run(f"{base}/api/v2/health", pid, headers=auth, **load))
            results["GET /auth/profile"].append(_run(f"{base}/auth/profile", pid, headers=auth, **load))
            for _ in range(args.rounds):
                results["bare"].append(_run(bare[0], bare[1], **load))
                results["health+profile"].append(_run(f"{base}/", pid, headers=auth, script=script, **load))
    return results


if __name__ == "__main__":
    main()
