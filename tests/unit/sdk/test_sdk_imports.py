"""The SDK installs and imports without the server: nothing of it is loaded by ``agentlightning``,
its exports or the SDK modules."""

from __future__ import annotations

import subprocess
import sys

SERVER_MODULES = (
    "fastapi",
    "sqlalchemy",
    "starlette",
    "redis",
    "uvicorn",
    "alembic",
    "asyncpg",
    "aiosqlite",
    "pydantic_settings",
    "agentlightning.api",
    "agentlightning.storage",
    "agentlightning.settings",
)

SCRIPT = f"""
import importlib, pkgutil, sys
import agentlightning
for name in agentlightning.__all__:
    getattr(agentlightning, name)
import agentlightning.sdk, agentlightning.integrations
for package in (agentlightning.sdk, agentlightning.integrations):
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(package.__name__ + "." + module.name)
loaded = sorted(m for m in sys.modules if m in {SERVER_MODULES!r} or m.split(".")[0] in {SERVER_MODULES!r})
print("LOADED", loaded)
"""


def test_the_sdk_imports_nothing_of_the_server() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


def test_importing_agentlightning_loads_no_framework() -> None:
    script = "import sys, agentlightning; print(sorted(m for m in ('openai', 'langchain_core', 'autogen_core') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
