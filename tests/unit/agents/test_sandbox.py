"""The python tool's sandbox refuses what it must: files outside its directory, sockets, process
creation (fork bombs), unbounded memory, runaway CPU, huge files and output."""

from __future__ import annotations

import os

import pytest

from agentlightning.agents.tools.sandbox import SandboxLimits, run_python

LIMITS = SandboxLimits(wall_seconds=5, cpu_seconds=2, memory_bytes=256 * 1024 * 1024)


async def run(code: str, limits: SandboxLimits = LIMITS):  # noqa: ANN201
    return await run_python(code, limits)


async def test_normal_code_runs_and_can_use_its_own_directory() -> None:
    result = await run(
        "import math, statistics, json\n"
        "open('notes.txt', 'w').write('hi')\n"
        "print(statistics.mean([1, 2, 3]), math.sqrt(16), open('notes.txt').read(), json.dumps({'a': 1}))"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == '2 4.0 hi {"a": 1}'
    assert result.files == ["notes.txt"]


@pytest.mark.parametrize(
    "code",
    [
        "print(open('/etc/passwd').read())",
        "print(open('../../etc/hostname').read())",
        f"print(open({os.path.abspath(__file__)!r}).read())",
        "import os; print(os.listdir('/'))",
        "import os; os.symlink('/etc/passwd', 'x'); print(open('x').read())",
        "open('/tmp/agl-sandbox-escape', 'w').write('x')",
        "import io; print(io.open_code('/etc/passwd').read())",
    ],
)
async def test_cannot_touch_files_outside_its_directory(code: str) -> None:
    result = await run(code)
    assert result.exit_code != 0
    assert "not allowed" in result.stderr or "Permission" in result.stderr
    assert "root:" not in result.stdout
    assert not os.path.exists("/tmp/agl-sandbox-escape")


@pytest.mark.parametrize(
    "code",
    [
        "import socket; s = socket.socket(); s.connect(('127.0.0.1', 5432))",
        "import _socket; _socket.socket()",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6379')",
        "import ctypes",
    ],
)
async def test_cannot_open_a_socket(code: str) -> None:
    result = await run(code)
    assert result.exit_code != 0
    # urllib itself may be unimportable when the interpreter's install dir is private (then the
    # sandbox user cannot load it); otherwise its socket import is refused.
    refusals = ("not available", "not allowed", "No module named 'urllib'")
    assert any(r in result.stderr for r in refusals), result.stderr


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import subprocess; subprocess.run(['sh', '-c', ':(){ :|:& };:'])",
        "import os; os.system('sleep 100 &')",
        "import os; os.execv('/bin/sh', ['sh'])",
        "import os; os.posix_spawn('/bin/true', ['true'], {})",
        "import multiprocessing; multiprocessing.Process(target=print).start()",
    ],
)
async def test_cannot_fork_or_spawn_processes(code: str) -> None:
    result = await run(code)
    assert result.exit_code != 0 and not result.timed_out
    assert "not allowed" in result.stderr or "not available" in result.stderr


async def test_memory_is_bounded() -> None:
    result = await run("chunks = []\nwhile True:\n    chunks.append(bytearray(10 * 1024 * 1024))")
    assert result.exit_code != 0 and "MemoryError" in result.stderr


async def test_cpu_and_wall_clock_are_bounded() -> None:
    spin = await run("while True:\n    pass", SandboxLimits(wall_seconds=10, cpu_seconds=1))
    assert spin.exit_code != 0 and spin.duration_ms < 5000  # killed by RLIMIT_CPU (SIGXCPU)
    sleeper = await run("import time\ntime.sleep(30)", SandboxLimits(wall_seconds=1, cpu_seconds=5))
    assert sleeper.timed_out and sleeper.duration_ms < 5000


async def test_file_size_and_output_are_capped() -> None:
    big_file = await run("open('big', 'wb').write(b'0' * (20 * 1024 * 1024))", SandboxLimits(file_bytes=1024 * 1024))
    assert big_file.exit_code != 0 and "File too large" in big_file.stderr
    chatty = await run("print('x' * 5_000_000)", SandboxLimits(output_bytes=1000))
    assert chatty.truncated and len(chatty.stdout) == 1000


async def test_environment_is_minimal() -> None:
    result = await run("import os; print(sorted(os.environ))")
    assert (
        result.stdout.strip() == "['HOME', 'LANG', 'LC_CTYPE', 'PYTHONIOENCODING', 'TMPDIR']"
        or "DATABASE_URL" not in result.stdout
    )
    assert "DATABASE_URL" not in result.stdout and "JWT" not in result.stdout


async def test_user_code_cannot_reach_the_sandbox_state() -> None:
    code = (
        "import sys\n"
        "try:\n    1/0\nexcept ZeroDivisionError as e:\n    f = e.__traceback__.tb_frame\n"
        "    while f.f_back: f = f.f_back\n    print(sorted(k for k in f.f_globals if not k.startswith('__')))\n"
        "print(sorted(k for k in vars(sys.modules['__main__']) if not k.startswith('__')))"
    )
    result = await run(code)
    assert result.exit_code == 0, result.stderr
    assert "hook" not in result.stdout and "read_roots" not in result.stdout and "_install" not in result.stdout
