"""The ``agentlightning`` CLI as a user runs it: migrate, users create/list/set-role, version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.e2e.server import CLI


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_user_management_commands(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "REDIS_URL": ""}
    assert "agentlightning 0.1.0" in _cli(env, "version").stdout
    migrated = _cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr

    created = _cli(env, "users", "create", "bob", "--role", "developer", "--password", "bobs-long-password")
    assert created.returncode == 0, created.stderr
    assert "role developer" in created.stdout

    duplicate = _cli(env, "users", "create", "bob", "--password", "another-long-password")
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr

    weak = _cli(env, "users", "create", "eve", "--password", "short")
    assert weak.returncode != 0

    assert _cli(env, "users", "set-role", "bob", "admin").returncode == 0
    bad_role = _cli(env, "users", "set-role", "bob", "emperor")
    assert bad_role.returncode != 0 and "Unknown role" in bad_role.stderr

    listed = _cli(env, "users", "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if "bob" in line)
    assert "admin" in row


def test_migrate_on_postgres(postgres_url: str) -> None:
    result = _cli({"DATABASE_URL": postgres_url}, "migrate")
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout


def test_embedded_data_lives_in_the_data_dir_and_reset_deletes_it(tmp_path: Path) -> None:
    """With no DATABASE_URL the database, index and RL files go to AGL_DATA_DIR (not the working
    directory), and ``reset`` deletes them; it refuses to touch a PostgreSQL database."""
    data_dir = tmp_path / "data-home"
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KNOWLEDGE_INDEX_DIR", "RL_ARTIFACTS_DIR")}
    env |= {"AGL_DATA_DIR": str(data_dir), "REDIS_URL": ""}

    def cli(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env={**env, **(extra or {})}, cwd=workdir, capture_output=True, text=True, timeout=120
        )

    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert (data_dir / "agentlightning.db").is_file()
    (data_dir / "rl" / "experiments").mkdir(parents=True)
    assert list(workdir.iterdir()) == []  # nothing written into the working directory

    refused = cli("reset", "--yes", extra={"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/x"})
    assert refused.returncode != 0 and "SQLite" in refused.stderr

    done = cli("reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert not (data_dir / "agentlightning.db").exists() and not (data_dir / "rl").exists()
    assert "nothing to delete" in cli("reset", "--yes").stdout
