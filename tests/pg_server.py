"""A private, real PostgreSQL server on a free port that a test can stop and start again.

``initdb`` into a temporary directory with the binaries of ``/usr/lib/postgresql/*/bin``; the
server runs as the ``postgres`` OS user when the tests run as root (PostgreSQL refuses to run as
root), trusts local connections, and keeps its data across :meth:`PostgresProcess.stop` and
:meth:`PostgresProcess.start`.  Fault tests restart it under traffic; the shared server on 5432
is never touched.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_server import free_port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


class PostgresProcess:
    """A throwaway cluster: ``start()``, ``stop()`` (fast shutdown, or ``kill`` for a crash), ``close()``."""

    def __init__(self, port: int | None = None) -> None:
        self.bin = _bin_dir()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="agl-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, timeout=120)

    @property
    def admin_dsn(self) -> str:
        """asyncpg DSN of the ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy async URL of ``database``."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect everyone; ``immediate``: as if it crashed)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def close(self) -> None:
        """Stop the server and delete its files."""
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(predicate: object, timeout: float = 60.0) -> None:
    """Poll ``predicate()`` until it is true (for synchronous setup steps)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
