"""Auto-RL end to end on the local model: does a starter agent get better by itself?

From a fresh SQLite database (migrations, the built-in verifiable suite installed, the starter
agents as shipped), offline, with the embedded local model (``--model``, Qwen2.5-Coder-1.5B by
default; the 0.5B sibling is about three times faster but, given the starter agent's tools, answers
most format tasks with a JSON imitation of a tool call whatever its prompt says):

1. the starter agent (``--agent``) as shipped; the *report* tasks are drawn from the suite's
   held-out split (``--task-types``);
2. **production traffic**: ``--samples`` training-split tasks are assigned to the agent through
   the task queue and run by a worker pool; each run is a rollout with its verifier reward;
3. **the monitor** (the Auto-RL background service, not a manual trigger) sees the agent's rolling
   success rate under the policy's threshold and starts an ``apo`` optimisation: training tasks
   from the train split, the promotion gate on *gate* tasks from the held-out split (disjoint
   from the report tasks, so the reported gain is not the gate's own selection);
4. **before / after**: once the run has ended, the shipped resources and the agent as it now is
   run the report tasks back to back (``--repeats`` times each, in-process, answers scored by
   their verifiers). When nothing was promoted the agent is the shipped one and the gain is 0 by
   construction (re-running it would only measure sampling noise: with 8 tasks at temperature 0.2
   two runs of the same agent differed by 37.5 points).

Prints the baseline, after, the gain in points with a 95 % paired-bootstrap CI, the gate's
decision and the wall time; the last line is ``auto_rl_gain_pp=<points>``. Sizes are flags: on a
loaded 2-core machine the 1.5B model answers a short task in 10-60 s, so the defaults are small.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import tempfile
import time
from typing import Any

from agentlightning.agents.pool import WorkerPool
from agentlightning.agents.scheduler import TaskScheduler
from agentlightning.agents.service import AgentService
from agentlightning.core.context import AppContext
from agentlightning.rl.auto.evaluator import AgentEvaluator, resources_of
from agentlightning.rl.auto.monitor import AutoRLMonitor, window_stats
from agentlightning.rl.auto.policy import PolicyService
from agentlightning.rl.auto.schemas import PolicyUpdate
from agentlightning.rl.auto.triggers import TriggerService
from agentlightning.rl.experiments import ExperimentService
from agentlightning.rl.manager import ExperimentManager
from agentlightning.rl.optimisers.base import VerifiableTask
from agentlightning.rl.suite import install_suite, load_suite_tasks
from agentlightning.settings import Settings
from agentlightning.storage.migrate import upgrade


def _task_dict(t: VerifiableTask) -> dict[str, Any]:
    return {
        "id": t.id,
        "prompt": t.prompt,
        "verifier": dict(t.verifier),
        "task_type": t.task_type,
        "context": dict(t.context),
    }


def paired_bootstrap_ci(
    before: list[float], after: list[float], *, n: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """95 % CI of mean(after - before) in points, resampling tasks (pairs kept together)."""
    diffs = [(a >= 0.5) - (b >= 0.5) for a, b in zip(after, before)]
    rng = random.Random(seed)
    means = sorted(100.0 * sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(n))
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def _rate(scores: list[float]) -> float:
    return 100.0 * sum(s >= 0.5 for s in scores) / len(scores) if scores else 0.0


async def _wait(predicate: Any, timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(every)


async def run(args: argparse.Namespace) -> float:
    started = time.perf_counter()
    types = [t.strip() for t in args.task_types.split(",") if t.strip()]
    with tempfile.TemporaryDirectory(prefix="agl-auto-rl-") as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/auto_rl.db"
        upgrade(url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            redis_url=None,
            llm_base_url=None,
            local_model=args.model,
            rl_artifacts_dir=os.path.join(scratch, "rl"),
            rl_poll_interval_seconds=0.5,
            auto_rl_poll_seconds=2.0,
            auto_rl_eval_concurrency=1,
            agent_workers_min=1,
            agent_workers_max=1,
        )
        ctx = await AppContext.create(settings)
        try:
            summary = await install_suite(ctx)
            print(f"suite installed: {summary}", flush=True)
            agents = AgentService(ctx)
            profile = await agents.profile(args.agent)
            print(f"agent {profile.name} (type {profile.type}) as shipped: {profile.system_prompt!r}", flush=True)
            heldout = await load_suite_tasks(ctx.db, split="heldout", task_types=types)
            train = await load_suite_tasks(ctx.db, split="train", task_types=types)
            rng = random.Random(args.seed)
            rng.shuffle(heldout)
            rng.shuffle(train)
            report = heldout[: args.report]
            gate = heldout[args.report : args.report + args.gate]
            production = train[: args.samples]
            optimiser_train = train[args.samples : args.samples + args.train] or train[: args.train]
            if len(report) < args.report or len(gate) < args.gate:
                raise SystemExit(f"only {len(heldout)} held-out tasks of types {types}; lower --report/--gate")
            print(
                f"tasks: report {len(report)} + gate {len(gate)} (held-out split), optimiser train "
                f"{len(optimiser_train)}, production {len(production)} (train split)",
                flush=True,
            )

            # 1. the starter agent as shipped (measured at the end, back to back with the agent after)
            shipped = resources_of(profile)

            # 2. the agent's policy: the monitor's window, and what a triggered run may use
            options: dict[str, Any] = {
                "train": [_task_dict(t) for t in optimiser_train],
                "heldout": [_task_dict(t) for t in gate],
                "rounds": args.rounds,
                "beam_width": args.beam,
                "branching": args.branching,
                "minibatch": args.minibatch,
                "final_eval": args.final_eval,
                "seed": args.seed,
            }
            await PolicyService(ctx).update(
                profile.id,
                PolicyUpdate(
                    enabled=True,
                    window=args.samples,
                    min_samples=args.samples,
                    success_threshold=args.threshold,
                    cooldown_minutes=60,
                    algorithm="apo",
                    max_evaluations=args.max_evaluations,
                    max_wall_seconds=args.max_wall_seconds,
                    alpha=args.alpha,
                    options=options,
                ),
                actor="benchmark",
            )

            # 3. production traffic through the task queue: rollouts with verifier rewards
            t0 = time.perf_counter()
            pool = WorkerPool(settings)
            await pool.start(ctx)
            scheduler = TaskScheduler(ctx)
            for t in production:
                await scheduler.assign(
                    task=t.prompt,
                    agent_id=profile.id,
                    context={**dict(t.context), "verifier": dict(t.verifier)},
                    created_by="benchmark",
                )

            async def _window_full() -> dict[str, Any] | None:
                stats = await window_stats(ctx, profile.id, args.samples)
                return stats if stats["n"] >= args.samples else None

            stats = await _wait(_window_full, args.timeout, "the production tasks")
            await pool.stop()
            print(
                f"production: {stats['n']} rollouts, success {100 * (stats['success_rate'] or 0):.1f}% "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

            if (stats["success_rate"] or 0.0) >= args.threshold:
                raise SystemExit(
                    f"the agent's rolling success ({stats['success_rate']:.2f}) is not under the threshold "
                    f"({args.threshold}): the monitor has nothing to do; raise --threshold or --samples"
                )

            # 4. the monitor triggers by itself; the manager runs the optimisation and the gate
            t0 = time.perf_counter()
            manager = ExperimentManager(settings)
            await manager.start(ctx)
            ctx.services["rl"] = manager
            monitor = AutoRLMonitor(settings)
            await monitor.start(ctx)
            ctx.services["auto_rl"] = monitor
            triggers = TriggerService(ctx)

            async def _ended() -> dict[str, Any] | None:
                recent = [t for t in await triggers.recent() if t["agent_id"] == profile.id]
                return recent[0] if recent and recent[0]["outcome"] != "running" else None

            try:
                trigger = await _wait(_ended, args.timeout, "the Auto-RL run", every=2.0)
            finally:
                await monitor.stop()
                await manager.stop()
            decision = trigger["decision"]
            print(
                f"Auto-RL: triggered by the {trigger['reason']} at success {100 * (trigger['success_rate'] or 0):.1f}%"
                f" over {trigger['n']} rollouts; outcome {trigger['outcome']}; gate: incumbent "
                f"{decision.get('incumbent_passes')}/{decision.get('n')}, candidate "
                f"{decision.get('candidate_passes')}/{decision.get('n')}, p={decision.get('p_value')} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

            if trigger["experiment_id"]:
                final = (await ExperimentService(ctx).get(trigger["experiment_id"]))["metrics"].get("final_evaluation")
                best = (final or {}).get("best_resources") or {}
                print(
                    f"optimiser: {(final or {}).get('candidates')} candidates, training score incumbent "
                    f"{(final or {}).get('train_incumbent_score')} best {(final or {}).get('train_best_score')}; "
                    f"best candidate: {best.get('system_prompt')!r}",
                    flush=True,
                )

            # 5. before and after, back to back on the same report tasks (--repeats times each):
            # the shipped resources, then the agent as it now is. An agent that was not promoted is
            # the shipped one: its gain is 0 by construction, re-running it would only measure noise.
            t0 = time.perf_counter()
            now = await agents.profile(profile.id)
            current = resources_of(now)
            print(f"agent prompt now: {now.system_prompt!r}", flush=True)
            evaluator = AgentEvaluator(ctx, now, concurrency=1)
            before, after = [], []
            for _ in range(args.repeats):
                scores = await evaluator(shipped, report)
                before += scores
                after += await evaluator(current, report) if current != shipped else scores
            if current == shipped:
                print("not promoted: the agent is unchanged, so after = before", flush=True)
            print(
                f"before: {_rate(before):.1f}% after: {_rate(after):.1f}% over {len(before)} runs "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        finally:
            await ctx.close()
    gain = _rate(after) - _rate(before)
    low, high = paired_bootstrap_ci(before, after)
    print(
        f"model={args.model} agent={args.agent} task_types={args.task_types} report_tasks={len(report)} "
        f"repeats={args.repeats}"
    )
    print(
        f"baseline={_rate(before):.1f}% after={_rate(after):.1f}% gain={gain:+.1f} pp (95% CI {low:+.1f} .. {high:+.1f})"
    )
    print(f"wall_time_s={time.perf_counter() - started:.0f}")
    return gain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="LOCAL_MODEL")
    parser.add_argument("--agent", default="general_assistant", help="a starter agent, as shipped")
    parser.add_argument("--task-types", default="format", help="suite task types (comma-separated)")
    parser.add_argument("--report", type=int, default=20, help="held-out tasks measured before and after")
    parser.add_argument("--gate", type=int, default=30, help="held-out tasks the promotion gate compares on")
    parser.add_argument("--train", type=int, default=30, help="training tasks the optimiser may use")
    parser.add_argument("--samples", type=int, default=6, help="production tasks (= monitor window and min samples)")
    parser.add_argument("--threshold", type=float, default=0.8, help="the policy's success threshold")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--branching", type=int, default=1)
    parser.add_argument("--minibatch", type=int, default=12)
    parser.add_argument("--final-eval", type=int, default=12)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--max-evaluations", type=int, default=200)
    parser.add_argument("--max-wall-seconds", type=int, default=3600)
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each report task, before and after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every evaluated task and the optimiser's steps")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
        for name in ("agentlightning.rl.auto", "agentlightning.rl.optimisers"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    gain = asyncio.run(run(args))
    print(f"auto_rl_gain_pp={gain:.1f}")


if __name__ == "__main__":
    main()
