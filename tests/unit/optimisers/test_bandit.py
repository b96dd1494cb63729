"""Offline ``bandit`` (Thompson sampling) on a seeded, scripted evaluator."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentlightning.rl.optimisers.bandit import Arm, Bandit, Variant, choose, parse_variants
from agentlightning.rl.optimisers.base import OPTIMISERS, AgentResources, OptimiserContext, VerifiableTask

TASKS = [
    VerifiableTask(id=f"t{i}", prompt=f"q{i}", verifier={"type": "exact", "expected": "x"}, task_type=kind)
    for i in range(12)
    for kind in ("maths", "format")
]
VARIANTS = [
    {"name": "careful", "system_prompt": "Check every step.", "temperature": 0.0},
    {"name": "sloppy", "system_prompt": "Guess.", "temperature": 1.5},
]


def make_ctx(
    tmp_path: Path, success: Mapping[tuple[str, str | None], float], config: Mapping[str, Any], seed: int = 7
) -> tuple[OptimiserContext, list[int]]:
    """``success[(task_type, variant)]``: probability that a run of that variant on that type succeeds."""
    rng = random.Random(seed)
    reports: list[int] = []

    async def evaluate(resources: AgentResources, tasks: Sequence[VerifiableTask]) -> list[float]:
        return [1.0 if rng.random() < success[(t.task_type, resources.variant)] else 0.0 for t in tasks]

    async def report(step: int, values: Mapping[str, float]) -> None:
        reports.append(step)

    ctx = OptimiserContext(
        agent_id=1,
        incumbent=AgentResources(system_prompt="Be helpful.", model="m", temperature=0.3),
        train_tasks=TASKS,
        low_reward_rollouts=[],
        evaluate=evaluate,
        critic=None,  # type: ignore[arg-type]  # the bandit needs no critic
        config=config,
        report=report,
        should_stop=lambda: False,
        workdir=tmp_path,
    )
    return ctx, reports


async def test_bandit_converges_to_the_better_variant(tmp_path: Path) -> None:
    rates = {(kind, "careful"): 0.85 for kind in ("maths", "format")}
    rates |= {(kind, "sloppy"): 0.2 for kind in ("maths", "format")}
    rates |= {(kind, None): 0.5 for kind in ("maths", "format")}  # the incumbent
    ctx, reports = make_ctx(tmp_path, rates, {"variants": VARIANTS, "pulls": 300, "seed": 1, "report_every": 50})
    result = await OPTIMISERS["bandit"]().optimise(ctx)
    assert result.best.variant == "careful"
    assert result.best.system_prompt == "Check every step." and result.best.temperature == 0.0
    assert result.best.model == "m"  # not overridden: the incumbent's
    by_name = {c["variant"]: c for c in result.candidates}
    assert set(by_name) == {"careful", "sloppy", "incumbent"}
    assert by_name["careful"]["pull_share"] > 0.6
    means = {name: c["posterior"]["posterior_mean"] for name, c in by_name.items()}
    assert means["careful"] > 0.75 and means["careful"] > max(means["incumbent"], means["sloppy"])
    # The weaker variants are still explored a little (Thompson sampling), far less than the winner.
    assert 0 < by_name["sloppy"]["posterior"]["pulls"] < by_name["careful"]["posterior"]["pulls"] / 4
    assert result.best_score > result.incumbent_score
    assert reports == [50, 100, 150, 200, 250, 300]


async def test_bandit_learns_per_task_type(tmp_path: Path) -> None:
    rates = {("maths", "careful"): 0.9, ("maths", "sloppy"): 0.1, ("format", "careful"): 0.1, ("format", "sloppy"): 0.9}
    ctx, _ = make_ctx(tmp_path, rates, {"variants": VARIANTS, "pulls": 300, "include_incumbent": False, "seed": 3})
    result = await Bandit().optimise(ctx)
    per_type = {c["variant"]: c["per_task_type"] for c in result.candidates}
    assert per_type["careful"]["maths"]["pulls"] > 3 * per_type["sloppy"]["maths"]["pulls"]
    assert per_type["sloppy"]["format"]["pulls"] > 3 * per_type["careful"]["format"]["pulls"]


async def test_gaussian_posterior_on_rewards(tmp_path: Path) -> None:
    rates = {(kind, v): p for kind in ("maths", "format") for v, p in (("careful", 0.8), ("sloppy", 0.3))}
    config = {"variants": VARIANTS, "pulls": 200, "posterior": "gaussian", "include_incumbent": False}
    ctx, _ = make_ctx(tmp_path, rates, config)
    result = await Bandit().optimise(ctx)
    assert result.best.variant == "careful"


def test_variants_are_validated() -> None:
    with pytest.raises(ValueError, match="unique"):
        parse_variants([{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError):
        parse_variants([{"name": "a", "temperature": 9}])
    with pytest.raises(ValueError):
        parse_variants([{"name": "a", "code": "import os"}])
    with pytest.raises(ValueError):
        parse_variants("not a list")
    assert Variant(name="v", tools=["calculator"]).apply(AgentResources(system_prompt="p")).tools == ("calculator",)


def test_thompson_sampling_prefers_the_stronger_posterior() -> None:
    rng = random.Random(0)
    arms = {"good": Arm(alpha=40, beta=5), "bad": Arm(alpha=5, beta=40)}
    picks = [choose(arms, ["good", "bad", "new"], "beta", rng) for _ in range(200)]
    assert picks.count("good") > 150
    assert picks.count("new") > 0  # an unseen arm (the uniform prior) still gets explored
