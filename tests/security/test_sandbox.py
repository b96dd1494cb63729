"""The python tool's sandbox holds against hostile code, whether the server runs as root or not.

Each test runs twice: as this (root) test process runs it, and as a server without privileges
would (bwrap started as ``nobody``, in a user namespace). Nothing here depends on Python-level
guards: the code under test may rewrite any of its own interpreter's functions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import agentlightning.agents.tools.sandbox as sandbox_module
from agentlightning.agents.tools.sandbox import SandboxLimits, SandboxResult, SandboxUnavailable, run_python

LIMITS = SandboxLimits(wall_seconds=20, cpu_seconds=2, memory_bytes=256 * 1024 * 1024, disk_bytes=4 * 1024 * 1024)
NOBODY = 65534
#: An interpreter the unprivileged user can execute (the test venv's lives under /root, 0700).
SYSTEM_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)), None)
SECRET = "agl-test-server-secret-0123456789"


@pytest.fixture(params=["root", "unprivileged"])
def mode(request: pytest.FixtureRequest) -> str:
    """How the server that starts the sandbox runs."""
    if request.param == "unprivileged" and SYSTEM_PYTHON is None:
        pytest.skip("no interpreter outside /root that 'nobody' may execute")
    if request.param == "root" and os.geteuid() != 0:
        pytest.skip("the suite is not running as root")
    return str(request.param)


@pytest.fixture(autouse=True)
def server_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's environment holds secrets, as a real deployment's does."""
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://agl:{SECRET}@127.0.0.1:5432/agl")


async def run(code: str, mode: str, limits: SandboxLimits = LIMITS) -> SandboxResult:
    """Run ``code`` as the given kind of server would."""
    if mode == "unprivileged":
        return await run_python(code, limits, python=SYSTEM_PYTHON, as_user=NOBODY)
    return await run_python(code, limits)


async def test_a_legitimate_computation_still_works(mode: str) -> None:
    result = await run(
        "import math, statistics, json, collections, decimal, re\n"
        "open('notes.txt', 'w').write('hi')\n"
        "print(statistics.mean([1, 2, 3]), math.sqrt(16), open('notes.txt').read(), json.dumps({'a': 1}))",
        mode,
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == '2 4.0 hi {"a": 1}'


@pytest.mark.parametrize(
    "code",
    [
        "print(open('/etc/passwd').read())",
        "print(open('/etc/shadow').read())",
        "print(open('../etc/passwd').read())",
        f"print(open({sandbox_module.__file__!r}).read())",
        f"import os; print(os.listdir({str(Path(sandbox_module.__file__).parents[3])!r}))",
        "import os; print(os.listdir('/home'), os.listdir('/var'))",
        "import os; os.symlink('/etc/passwd', 'x'); print(open('x').read())",
    ],
)
async def test_host_files_and_platform_source_are_not_there(code: str, mode: str) -> None:
    result = await run(code, mode)
    assert result.exit_code != 0
    assert "root:" not in result.stdout and "SandboxLimits" not in result.stdout
    assert "agentlightning" not in result.stdout


async def test_no_host_processes_or_their_environment(mode: str) -> None:
    code = (
        "import glob, os\n"
        "seen = []\n"
        "for path in glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        seen.append(path + '=' + open(path, 'rb').read().decode(errors='replace'))\n"
        "    except OSError as exc:\n"
        "        seen.append(path + ' ' + type(exc).__name__)\n"
        "print(len(glob.glob('/proc/[0-9]*')))\n"
        "print(dict(os.environ))\n"
        "print('\\n'.join(seen))\n"
    )
    result = await run(code, mode)
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout
    assert "pytest" not in result.stdout and "JWT_SECRET" not in result.stdout
    # A fresh PID namespace: bwrap's reaper and the program, nothing of the host.
    assert int(result.stdout.splitlines()[0]) <= 3


@pytest.mark.parametrize(
    "target",
    ["/usr/lib/agl-escape", "/etc/agl-escape", "{host}/agl-escape", "/proc/sys/kernel/agl"],
)
async def test_cannot_write_outside_the_scratch_directory(target: str, mode: str, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    path = target.format(host=tmp_path)
    result = await run(f"open({path!r}, 'w').write('x')", mode)
    assert result.exit_code != 0
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "code",
    [
        "import socket; s = socket.create_connection(('127.0.0.1', 5432), timeout=2); print('connected')",
        "import socket; print(socket.getaddrinfo('localhost', 5432)); print('resolved')",
        "import socket; print(socket.gethostbyname('example.com')); print('resolved')",
        "import socket; socket.socket(socket.AF_INET6, socket.SOCK_STREAM); print('connected')",
        "import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW); print('connected')",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6379', timeout=2); print('connected')",
    ],
)
async def test_no_network(code: str, mode: str) -> None:
    result = await run(code, mode)
    assert result.exit_code != 0
    assert "connected" not in result.stdout and "resolved" not in result.stdout


async def test_fork_bomb_is_contained(mode: str) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    limits = SandboxLimits(wall_seconds=6, cpu_seconds=2, max_processes=8)
    result = await run(code, mode, limits)
    assert result.exit_code != 0 or result.timed_out
    after = await run("print('alive')", mode)
    assert after.stdout.strip() == "alive"


async def test_memory_bomb_is_refused(mode: str) -> None:
    result = await run("x = bytearray(2 * 1024 ** 3)\nprint('allocated')", mode)
    assert result.exit_code != 0
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


async def test_disk_fill_stops_at_the_scratch_size(mode: str) -> None:
    code = (
        "i = 0\n"
        "while True:\n"
        "    with open(f'f{i}', 'wb') as fh:\n"
        "        fh.write(b'x' * 1024 * 1024)\n"
        "    i += 1\n"
        "    if i > 200: print('filled'); break\n"
    )
    result = await run(code, mode)
    assert result.exit_code != 0
    assert "No space left on device" in result.stderr
    assert "filled" not in result.stdout


async def test_cpu_loop_is_killed(mode: str) -> None:
    result = await run("while True:\n    pass\n", mode, SandboxLimits(wall_seconds=20, cpu_seconds=1))
    assert result.exit_code != 0 or result.timed_out


async def test_wall_clock_timeout(mode: str) -> None:
    result = await run("import time\ntime.sleep(60)", mode, SandboxLimits(wall_seconds=1.5, cpu_seconds=2))
    assert result.timed_out


@pytest.mark.parametrize(
    "code",
    [
        # Replace every Python-level hook and builtin a guard could use, then try the files.
        "import builtins, sys, io\n"
        "builtins.open = io.open\n"
        "sys.addaudithook = lambda *a: None\n"
        "for m in list(sys.modules):\n"
        "    if 'sandbox' in m: del sys.modules[m]\n"
        "print(io.open('/etc/passwd').read())",
        # Kernel-level escapes through libc: a new user namespace, mount, chroot, ptrace.
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "r = [libc.unshare(0x10000000), libc.unshare(0x00020000), libc.mount(b'none', b'/sandbox', b'tmpfs', 0, None),"
        " libc.ptrace(16, 1, None, None)]\n"
        "print(r)\n"
        "assert all(x == -1 for x in r), r\n"
        "os.chroot('/sandbox')",
        "import os; os.setuid(0); print(open('/etc/shadow').read())",
    ],
)
async def test_tampering_with_the_interpreter_changes_nothing(code: str, mode: str) -> None:
    result = await run(code, mode)
    assert result.exit_code != 0
    assert "root:" not in result.stdout


async def test_runs_under_an_unprivileged_identity(mode: str) -> None:
    result = await run("import os; print(os.getuid(), os.geteuid(), open('/proc/self/status').read())", mode)
    assert result.exit_code == 0, result.stderr
    uid, euid = result.stdout.split()[:2]
    assert uid != "0" and euid != "0"
    caps = [line for line in result.stdout.splitlines() if line.startswith("CapEff")]
    assert caps == ["CapEff:\t0000000000000000"]
    seccomp = [line for line in result.stdout.splitlines() if line.startswith("Seccomp:")]
    assert seccomp == ["Seccomp:\t2"]


async def test_without_bubblewrap_the_tool_fails_closed() -> None:
    with pytest.raises(SandboxUnavailable):
        await run_python("print(1)", LIMITS, bwrap="/nonexistent/bwrap")


def test_bubblewrap_is_installed() -> None:
    assert shutil.which("bwrap"), "bubblewrap must be installed (scripts/install_system_deps.sh)"
