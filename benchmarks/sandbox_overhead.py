"""Cost of the python tool's kernel sandbox per call.

Runs the same tiny program ``N`` times (sequentially, on this machine) two ways and compares the
median wall time of one call:

* baseline: ``python -I -S -B -c <program>`` as a plain subprocess (what any out-of-process
  interpreter costs);
* sandboxed: :func:`agentlightning.agents.tools.sandbox.run_python` (bubblewrap namespaces,
  seccomp filter, rlimits, launcher ``exec``).

The last line is the figure: sandboxed / baseline median latency.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from agentlightning.agents.tools.sandbox import SandboxLimits, default_python, run_python

PROGRAM = "import math, statistics; print(statistics.mean(math.sqrt(i) for i in range(1000)))"
N = 30


async def _plain() -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        default_python(), "-I", "-S", "-B", "-c", PROGRAM, stdout=asyncio.subprocess.PIPE, env={}
    )
    await proc.communicate()
    return time.perf_counter() - started


async def _sandboxed() -> float:
    started = time.perf_counter()
    result = await run_python(PROGRAM, SandboxLimits(wall_seconds=30))
    assert result.exit_code == 0, result.stderr
    return time.perf_counter() - started


async def main() -> None:
    """Measure both, alternating, after one warm-up each."""
    await _plain()
    await _sandboxed()
    plain: list[float] = []
    boxed: list[float] = []
    for _ in range(N):
        plain.append(await _plain())
        boxed.append(await _sandboxed())
    p, b = statistics.median(plain), statistics.median(boxed)
    print(f"plain interpreter: median {p * 1000:.1f} ms over {N} calls", file=sys.stderr)
    print(f"sandboxed (bwrap+seccomp+rlimits): median {b * 1000:.1f} ms over {N} calls", file=sys.stderr)
    print(f"sandbox latency ratio vs plain subprocess: {b / p:.2f} ({b * 1000:.0f} ms vs {p * 1000:.0f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
