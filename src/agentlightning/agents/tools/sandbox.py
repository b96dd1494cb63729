"""Run untrusted Python in a separate process confined by the kernel (bubblewrap + seccomp + rlimits).

Nothing here relies on checks inside the interpreter that runs the untrusted code: that code can
replace any Python-level guard.  Every boundary is enforced by the kernel before the code starts:

* **mount view** (a private mount namespace built by ``bwrap``): only the interpreter, its
  standard library and the system's shared libraries, read-only; a fresh ``/proc`` of the
  sandbox's own PID namespace; a minimal ``/dev``; a size-limited ``tmpfs`` scratch directory
  (``/sandbox``, the only writable place, which also caps total disk use). The platform's
  source, ``/etc``, the host's ``/proc`` and every other file simply do not exist in there;
* **namespaces**: new PID, network (no interface but a down loopback), IPC, UTS and cgroup
  namespaces; the process tree dies with its parent;
* **clean environment** (``--clearenv``): nothing of the server's environment is inherited;
* **seccomp** (a BPF program compiled with libseccomp through ``pyseccomp``): no sockets but
  ``AF_UNIX``, no new namespaces, no mounts, no ``ptrace``, no keyring, BPF, perf, io_uring,
  module or kexec calls;
* **identity**: never root. A root server runs bwrap privileged (no user namespace) and the
  launcher switches to a throwaway uid before anything else runs, so the kernel's per-user
  process limit binds; an unprivileged server runs bwrap in a user namespace as itself;
* **rlimits**, set by the launcher before it ``exec``-s the interpreter on the user's program:
  CPU seconds, address space, file size, open files, processes, no core dumps; plus a wall-clock
  timeout after which the whole process tree is killed.

The sandbox needs ``bwrap`` (Debian package ``bubblewrap``) and libseccomp; without them the
tool fails closed (:class:`SandboxUnavailable`), it never runs code unconfined.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

#: Where the scratch directory is mounted inside the sandbox (and the program's working dir).
SCRATCH = "/sandbox"
#: First uid of the throwaway identities a root server gives each run.
DEFAULT_UID_BASE = 200_000
UID_RANGE = 60_000

# The launcher runs in the sandbox (already inside the namespaces and under seccomp) before any
# user code: it drops to the throwaway uid when bwrap ran privileged, sets the rlimits and
# replaces itself with a fresh interpreter on the program. It trusts nothing it cannot keep.
LAUNCHER = r"""
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
if cfg["drop_to"] is not None:
    uid = cfg["drop_to"]
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
for name, value in cfg["limits"].items():
    soft = hard = value
    if name == "RLIMIT_CPU":
        hard = value + 1
    resource.setrlimit(getattr(resource, name), (soft, hard))
os.execv(cfg["python"], [cfg["python"], "-I", "-S", "-B", cfg["program"]])
"""


class SandboxUnavailable(RuntimeError):
    """The OS facilities the sandbox needs (bwrap, libseccomp) are missing or broken."""


@dataclass(slots=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 256 * 1024 * 1024
    file_bytes: int = 10 * 1024 * 1024
    disk_bytes: int = 16 * 1024 * 1024
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

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for the tool result."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Interpreter:
    """The files an interpreter needs to start: bound read-only into the sandbox."""

    executable: str
    paths: tuple[str, ...]
    hidden: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def discover_interpreter(python: str) -> Interpreter:
    """Ask ``python`` (outside the sandbox, trusted) which files it starts from."""
    probe = (
        "import json, sys, sysconfig\n"
        "v = sysconfig.get_config_vars()\n"
        "lib = None\n"
        "if v.get('Py_ENABLE_SHARED') and v.get('LIBDIR') and v.get('INSTSONAME'):\n"
        "    lib = v['LIBDIR'] + '/' + v['INSTSONAME']\n"
        "print(json.dumps({'exe': sys.executable, 'path': sys.path, 'lib': lib}))\n"
    )
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30, check=True, env={}
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"cannot run the sandbox interpreter {python!r}: {exc}") from exc
    info = json.loads(out)
    exe = os.path.realpath(info["exe"])
    paths = [exe]
    for entry in info["path"]:
        if entry and os.path.isabs(entry) and os.path.exists(entry):
            paths.append(os.path.realpath(entry))
    if info["lib"] and os.path.exists(info["lib"]):
        paths.append(os.path.realpath(info["lib"]))
    hidden = [os.path.join(p, "site-packages") for p in paths if os.path.isdir(os.path.join(p, "site-packages"))]
    return Interpreter(exe, tuple(dict.fromkeys(paths)), tuple(hidden))


def default_python() -> str:
    """The server's own base interpreter (never a virtualenv's, whose packages stay outside)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def system_library_mounts() -> list[str]:
    """bwrap arguments exposing the shared libraries (read-only) and the ``/lib*`` links."""
    args: list[str] = []
    multiarch = getattr(sys.implementation, "_multiarch", "")
    dirs = [f"/usr/lib/{multiarch}"] if multiarch and os.path.isdir(f"/usr/lib/{multiarch}") else ["/usr/lib"]
    dirs += [d for d in ("/usr/lib64", "/usr/lib32") if os.path.isdir(d) and not os.path.islink(d)]
    for d in dirs:
        args += ["--ro-bind", d, d]
    for top in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def seccomp_program() -> bytes:
    """The BPF filter (default allow, dangerous calls refused with ``EPERM``) as raw bytes."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # the binding or libseccomp.so itself is missing
        raise SandboxUnavailable(f"libseccomp is not available: {exc}") from exc
    return _compile_filter(sc)


@functools.lru_cache(maxsize=1)
def _compiled_filter() -> bytes:
    return seccomp_program()


def _compile_filter(sc: object) -> bytes:
    import errno
    import tempfile

    f = sc.SyscallFilter(sc.ALLOW)  # type: ignore[attr-defined]
    deny = sc.ERRNO(errno.EPERM)  # type: ignore[attr-defined]
    for name in (
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
        "fsconfig",
        "fspick",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "quotactl",
        "syslog",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "name_to_handle_at",
        "open_by_handle_at",
        "fanotify_init",
        "lookup_dcookie",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "iopl",
        "ioperm",
        "personality",
        "pidfd_getfd",
        "mknod",
        "mknodat",
    ):
        try:
            f.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):  # a call this architecture does not have
            pass
    # Sockets: AF_UNIX only (the network namespace has no route anyway).
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, 1))  # type: ignore[attr-defined]
    # No new namespaces through clone flags; clone3 hides its flags in memory: make libc fall back.
    for flag in (0x00020000, 0x10000000, 0x20000000, 0x40000000, 0x04000000, 0x08000000, 0x02000000):
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))  # type: ignore[attr-defined]
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # type: ignore[attr-defined]
    # No faking keyboard input into a terminal.
    f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, 0x5412))  # type: ignore[attr-defined]
    with tempfile.TemporaryFile() as fh:
        f.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def _parent_dirs(paths: tuple[str, ...]) -> list[str]:
    """World-traversable parents for bound paths (bwrap creates them under the server's umask)."""
    parents: list[str] = []
    for path in paths:
        parent = os.path.dirname(path)
        chain: list[str] = []
        while parent not in ("/", ""):
            chain.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(chain):
            inside_bound = any(d == p or d.startswith(p + "/") for p in paths)
            if not inside_bound and d not in parents:
                parents.append(d)
    args: list[str] = []
    for d in parents:
        args += ["--perms", "0755", "--dir", d]
    return args


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def build_command(
    *,
    bwrap: str,
    interpreter: Interpreter,
    limits: SandboxLimits,
    code_fd: int,
    seccomp_fd: int,
    privileged: bool,
    run_uid: int,
) -> list[str]:
    """The ``bwrap`` command line of one run (the program arrives on ``code_fd``)."""
    cmd = [bwrap, "--die-with-parent", "--new-session", "--clearenv"]
    if privileged:
        # Root: no user namespace (its uid would still be the host's root, which the process
        # limit exempts); the launcher drops to ``run_uid`` itself with these two capabilities.
        cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", "65534", "--gid", "65534"]
    cmd += ["--hostname", "sandbox"]
    libraries = system_library_mounts()
    bound = [libraries[i + 2] for i, a in enumerate(libraries) if a == "--ro-bind"]
    cmd += _parent_dirs((*interpreter.paths, *bound))
    cmd += libraries
    for path in interpreter.paths:
        cmd += ["--ro-bind", path, path]
    for path in interpreter.hidden:
        cmd += ["--tmpfs", path]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--size", str(limits.disk_bytes), "--tmpfs", SCRATCH, "--chmod", "1777", SCRATCH]
    cmd += ["--size", str(1024 * 1024), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"]
    cmd += ["--perms", "0444", "--file", str(code_fd), f"{SCRATCH}/main.py"]
    cmd += ["--remount-ro", "/", "--chdir", SCRATCH, "--seccomp", str(seccomp_fd)]
    for var, value in (("HOME", SCRATCH), ("TMPDIR", "/tmp"), ("LANG", "C.UTF-8"), ("PYTHONIOENCODING", "utf-8")):
        cmd += ["--setenv", var, value]
    cfg = {
        "drop_to": run_uid if privileged else None,
        "python": interpreter.executable,
        "program": f"{SCRATCH}/main.py",
        "limits": {
            "RLIMIT_CORE": 0,
            "RLIMIT_CPU": max(1, int(limits.cpu_seconds)),
            "RLIMIT_AS": limits.memory_bytes,
            "RLIMIT_FSIZE": limits.file_bytes,
            "RLIMIT_NOFILE": limits.max_open_files,
            "RLIMIT_NPROC": limits.max_processes,
        },
    }
    cmd += [interpreter.executable, "-I", "-S", "-B", "-c", LAUNCHER, json.dumps(cfg)]
    return cmd


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


async def run_python(
    code: str,
    limits: SandboxLimits | None = None,
    *,
    python: str | None = None,
    bwrap: str | None = None,
    uid_base: int = DEFAULT_UID_BASE,
    as_user: int | None = None,
) -> SandboxResult:
    """Run ``code`` in a fresh confined interpreter and return its output.

    ``as_user`` starts bwrap under that uid instead of the server's own (how a server that does
    not run as root behaves; used by the tests, which run as root).
    """
    limits = limits or SandboxLimits()
    bwrap_path = shutil.which(bwrap or "bwrap")
    if bwrap_path is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed; the python tool needs it")
    # Probing the interpreter and compiling the filter happen once per process (cached).
    interpreter = await asyncio.to_thread(discover_interpreter, python or default_python())
    bpf = await asyncio.to_thread(_compiled_filter)
    privileged = os.geteuid() == 0 and as_user is None
    run_uid = uid_base + secrets.randbelow(UID_RANGE)
    code_fd = _memfd("agl-sandbox-code", code.encode("utf-8"))
    bpf_fd = _memfd("agl-sandbox-seccomp", bpf)
    try:
        cmd = build_command(
            bwrap=bwrap_path,
            interpreter=interpreter,
            limits=limits,
            code_fd=code_fd,
            seccomp_fd=bpf_fd,
            privileged=privileged,
            run_uid=run_uid,
        )
        extra: dict[str, object] = {}
        if as_user is not None:
            extra = {"user": as_user, "group": as_user, "extra_groups": []}
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            pass_fds=(code_fd, bpf_fd),
            start_new_session=True,
            **extra,  # type: ignore[arg-type]
        )
    finally:
        os.close(code_fd)
        os.close(bpf_fd)
    timed_out = False
    readers = asyncio.gather(
        _read_capped(proc.stdout, limits.output_bytes), _read_capped(proc.stderr, limits.output_bytes)
    )
    try:
        (out, out_trunc), (err, err_trunc) = await asyncio.wait_for(
            asyncio.shield(readers), timeout=limits.wall_seconds
        )
        await asyncio.wait_for(proc.wait(), timeout=max(1.0, limits.wall_seconds))
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        timed_out = isinstance(exc, asyncio.TimeoutError)
        _kill_group(proc.pid)
        await proc.wait()
        (out, out_trunc), (err, err_trunc) = await readers
        if not timed_out:
            raise
    duration_ms = int((time.perf_counter() - started) * 1000)
    stderr = err.decode("utf-8", "replace")
    if proc.returncode == 1 and stderr.startswith("bwrap:"):
        raise SandboxUnavailable(f"the sandbox could not start: {stderr.strip()[:500]}")
    return SandboxResult(
        stdout=out.decode("utf-8", "replace"),
        stderr=stderr,
        exit_code=proc.returncode,
        timed_out=timed_out,
        duration_ms=duration_ms,
        truncated=out_trunc or err_trunc,
    )


def _kill_group(pid: int) -> None:
    """Kill bwrap's process group; the sandbox's PID namespace dies with it (``--die-with-parent``)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - group already reaped / different owner
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
