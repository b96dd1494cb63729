"""A sandboxed Python subprocess for the ``python`` tool.

Layers, from the outside in:

* a throwaway working directory (deleted afterwards), a minimal environment, a new session
  (so the whole process group is killed on the wall-clock timeout), capped stdout/stderr;
* kernel limits set by the child before any user code runs (``resource``): CPU seconds,
  address space, file size, open files, processes, no core dumps;
* when the server runs as root: a private network namespace (no interfaces) and a switch to
  the unprivileged ``nobody`` user, so ``RLIMIT_NPROC`` and file permissions bind;
* inside the interpreter (``-I -S``: no site-packages, no environment influence) an audit
  hook that refuses sockets, process creation (fork/exec/spawn/subprocess), ctypes, and any
  file access outside the working directory except read-only access to the standard library.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

NOBODY_UID = 65534
NOBODY_GID = 65534
#: Standard-library modules made importable inside the sandbox even when the interpreter's
#: install directory is not readable by the unprivileged user.
PRELOAD_MODULES = [
    "math",
    "cmath",
    "decimal",
    "fractions",
    "statistics",
    "random",
    "itertools",
    "functools",
    "operator",
    "collections",
    "heapq",
    "bisect",
    "re",
    "string",
    "textwrap",
    "datetime",
    "time",
    "calendar",
    "json",
    "csv",
    "io",
    "base64",
    "hashlib",
    "struct",
    "array",
    "copy",
    "pprint",
    "dataclasses",
    "enum",
    "typing",
    "unicodedata",
    "zlib",
]

# Runs as the child interpreter's main program. It must not import subprocess or socket.
BOOTSTRAP = r"""
import sys

def _install(cfg):
    # Everything the sandbox needs lives in this function's scope; once it returns, user code
    # can reach none of it (the audit hook's state is a closure, not a global).
    import json, os, resource
    work = os.path.realpath(cfg["workdir"])
    os.chdir(work)
    with open(os.path.join(work, "main.py"), encoding="utf-8") as fh:
        source = fh.read()

    if cfg["isolate_network"]:
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).unshare(0x40000000)  # CLONE_NEWNET; needs CAP_SYS_ADMIN
        except Exception:
            pass
        for name in [m for m in sys.modules if m == "ctypes" or m.startswith("ctypes.") or m == "_ctypes"]:
            del sys.modules[name]

    def limit(which, value):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass

    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_AS, cfg["memory_bytes"])
    limit(resource.RLIMIT_FSIZE, cfg["file_bytes"])
    limit(resource.RLIMIT_NOFILE, cfg["max_open_files"])
    resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_seconds"], cfg["cpu_seconds"] + 1))

    # Modules user code may use, imported while the standard library is still readable
    # (after the switch to ``nobody`` a private interpreter install may no longer be).
    for name in cfg["preload"]:
        try:
            __import__(name)
        except Exception:
            pass

    if os.geteuid() == 0 and cfg["drop_privileges"]:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    limit(resource.RLIMIT_NPROC, cfg["max_processes"])

    read_roots = tuple(sorted({os.path.realpath(p) for p in sys.path if p and os.path.isabs(p)}))
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    blocked_prefixes = ("socket.", "ctypes.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                        "os.forkpty", "os.system", "os.kill", "os.killpg", "subprocess.", "pty.",
                        "gc.get_", "sys._current_frames", "sys.setprofile",
                        "sys.settrace", "os.setuid", "os.setgid", "os.chroot", "mmap.")
    blocked_modules = frozenset({"_socket", "socket", "_ctypes", "ctypes", "_posixsubprocess", "subprocess",
                                 "_multiprocessing", "multiprocessing", "pty", "select", "selectors",
                                 "_ssl", "ssl", "mmap", "_xxsubinterpreters", "faulthandler"})
    path_events = frozenset({"os.listdir", "os.scandir", "os.chdir", "os.mkdir", "os.remove", "os.rename",
                             "os.rmdir", "os.symlink", "os.link", "os.chmod", "os.chown", "os.truncate",
                             "os.utime", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
                             "shutil.copytree", "shutil.move", "shutil.rmtree", "shutil.chown", "glob.glob",
                             "os.chflags", "os.lchflags", "os.lchmod", "os.setxattr", "os.removexattr",
                             "os.listxattr", "os.getxattr"})
    read_only_events = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.listxattr", "os.getxattr"})
    realpath, join, fsdecode, isdir, sep = os.path.realpath, os.path.join, os.fsdecode, os.path.isdir, os.sep

    def inside(path, roots):
        return any(path == r or path.startswith(r + sep) for r in roots)

    def check_path(raw, write, opening=False):
        if raw is None or isinstance(raw, int):
            return
        path = realpath(join(work, fsdecode(raw)))
        if inside(path, (work,)):
            return
        # Outside the scratch directory: read-only files of the standard library, never a
        # directory (a directory fd would let relative opens escape these checks).
        if not write and inside(path, read_roots) and not (opening and isdir(path)):
            return
        raise PermissionError(f"sandbox: access to {fsdecode(raw)!r} is not allowed")

    def hook(event, args):
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            write = bool(isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & write_flags)
            check_path(path, write, opening=True)
        elif event == "import":
            if args[0] in blocked_modules or args[0].split(".")[0] in blocked_modules:
                raise PermissionError(f"sandbox: module {args[0]!r} is not available")
        elif event.startswith(blocked_prefixes):
            raise PermissionError(f"sandbox: {event} is not allowed")
        elif event in path_events:
            write = event not in read_only_events
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)):
                    check_path(arg, write)

    sys.addaudithook(hook)
    return source

_code = compile(_install(__import__("json").loads(sys.argv[1])), "<sandbox>", "exec")
del _install
sys.argv = ["<sandbox>"]
_main = type(sys)("__main__")
sys.modules["__main__"] = _main
exec(_code, _main.__dict__)
"""


@dataclass(slots=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 256 * 1024 * 1024
    file_bytes: int = 10 * 1024 * 1024
    max_open_files: int = 64
    max_processes: int = 16
    output_bytes: int = 64 * 1024


@dataclass(slots=True)
class SandboxResult:
    """What came out of a run."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    truncated: bool = False
    files: list[str] | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for the tool result."""
        return asdict(self)


async def _read_capped(stream: asyncio.StreamReader | None, cap: int) -> tuple[bytes, bool]:
    if stream is None:
        return b"", False
    kept = bytearray()
    truncated = False
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return bytes(kept), truncated
        room = cap - len(kept)
        if room > 0:
            kept.extend(chunk[:room])
        if len(chunk) > room:
            truncated = True


async def run_python(code: str, limits: SandboxLimits | None = None, *, base_dir: str | None = None) -> SandboxResult:
    """Run ``code`` in a fresh sandboxed interpreter and return its output."""
    limits = limits or SandboxLimits()
    workdir = tempfile.mkdtemp(prefix="agl-sandbox-", dir=base_dir)
    is_root = os.geteuid() == 0
    try:
        Path(workdir, "main.py").write_text(code, encoding="utf-8")
        if is_root:
            os.chown(workdir, NOBODY_UID, NOBODY_GID)
        os.chmod(workdir, 0o700)
        cfg = {
            "workdir": workdir,
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "max_open_files": limits.max_open_files,
            "max_processes": limits.max_processes,
            "cpu_seconds": max(1, int(limits.cpu_seconds)),
            "isolate_network": True,
            "drop_privileges": True,
            "uid": NOBODY_UID,
            "gid": NOBODY_GID,
            "preload": PRELOAD_MODULES,
        }
        env = {"PYTHONIOENCODING": "utf-8", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            BOOTSTRAP,
            json.dumps(cfg),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
        timed_out = False
        readers = asyncio.gather(
            _read_capped(proc.stdout, limits.output_bytes), _read_capped(proc.stderr, limits.output_bytes)
        )
        try:
            (out, out_trunc), (err, err_trunc) = await asyncio.wait_for(
                asyncio.shield(readers), timeout=limits.wall_seconds
            )
            await asyncio.wait_for(proc.wait(), timeout=max(0.5, limits.wall_seconds))
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            timed_out = isinstance(exc, asyncio.TimeoutError)
            _kill_group(proc.pid)
            await proc.wait()
            (out, out_trunc), (err, err_trunc) = await readers
            if not timed_out:
                raise
        duration_ms = int((time.perf_counter() - started) * 1000)
        files = sorted(p.name for p in Path(workdir).iterdir() if p.name != "main.py")
        return SandboxResult(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            exit_code=proc.returncode,
            timed_out=timed_out,
            duration_ms=duration_ms,
            truncated=out_trunc or err_trunc,
            files=files[:50],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - group already reaped / different owner
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
