"""GRPO on the CPU: optimiser steps per second of the ``grpo`` optimiser on SmolLM2-135M-Instruct.

Runs :class:`~agentlightning.rl.optimisers.grpo.GrpoOptimiser` as Auto-RL would (a spawned
training process, LoRA, rewards from ``numeric`` verifiers) on a fixed set of small additions,
and prints what it measured: steps/s of training (model loading and the before/after measurement
excluded), and the mean greedy verifier reward on the training tasks before and after.

Nothing is downloaded: the model is the local GGUF, converted once to a plain checkpoint under
``LOCAL_MODEL_DIR``. On a GPU the same script trains in bf16 (``--device cuda``, or ``auto``).
The last line is ``grpo_cpu_steps_per_second=<value>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentlightning.rl.optimisers.base import AgentResources, OptimiserContext, VerifiableTask
from agentlightning.rl.optimisers.grpo import GrpoOptimiser

PAIRS = [(2, 3), (4, 4), (7, 1), (5, 6), (9, 3), (8, 8), (12, 5), (6, 7)]
SYSTEM = "You are a calculator. Reply with the result only."


async def run(args: argparse.Namespace) -> dict[str, float]:
    """One GRPO run; the figures of its result."""
    tasks = [
        VerifiableTask(id=f"add{i}", prompt=f"What is {a} + {b}?", verifier={"type": "numeric", "expected": a + b})
        for i, (a, b) in enumerate(PAIRS)
    ]
    started = time.perf_counter()

    async def report(step: int, metrics: Mapping[str, float]) -> None:
        shown = ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())
        print(f"[{time.perf_counter() - started:6.1f}s] step {step}: {shown}", flush=True)

    async def evaluate(resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[float]:
        raise AssertionError("not used: the benchmark scores with the training process's measurement")

    async def critic(messages: Sequence[Mapping[str, str]]) -> str:
        raise AssertionError("grpo needs no critic")

    with tempfile.TemporaryDirectory(prefix="agl-grpo-bench-") as workdir:
        ctx = OptimiserContext(
            agent_id=0,
            incumbent=AgentResources(system_prompt=SYSTEM),
            train_tasks=tasks,
            low_reward_rollouts=[],
            evaluate=evaluate,
            critic=critic,
            config={
                "max_steps": args.steps,
                "num_generations": args.generations,
                "max_completion_length": args.tokens,
                "learning_rate": args.lr,
                "device": args.device,
                "evaluate": False,
            },
            report=report,
            should_stop=lambda: False,
            workdir=Path(workdir),
        )
        result = await GrpoOptimiser().optimise(ctx)
    entry = result.candidates[0]
    return {
        "steps": float(entry["steps"]),
        "train_seconds": float(entry["train_seconds"]),
        "total_seconds": float(entry["total_seconds"]),
        "reward_before": float(entry["reward_before"]),
        "reward_after": float(entry["reward_after"]),
        "steps_per_second": float(entry["steps_per_second"]),
    }


def main() -> None:
    """Parse arguments, run once, print the figures (the last line is the headline)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=16, help="max completion tokens")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}")
    for key, value in figures.items():
        print(f"{key}={value:.4g}")
    print(f"grpo_cpu_steps_per_second={figures['steps_per_second']:.4f}")


if __name__ == "__main__":
    main()
