"""``bandit``: Thompson sampling over declared variants of an agent, per task type.

A *variant* is a named set of overrides of the agent's resources (system prompt, model,
temperature, tool set), declared in the agent's ``config.variants`` or the experiment's
``config["variants"]``::

    {"variants": [{"name": "terse", "system_prompt": "Answer in one line."},
                  {"name": "cool", "temperature": 0.0, "model": "qwen2.5-7b"}]}

Each (task type, variant) pair is an arm with a posterior over how good the variant is on that
type of task: a Beta posterior on success (reward >= 0.5, the platform's definition of a
successful rollout), or a Gaussian one on the reward itself. To pick a variant, draw one sample
from each arm's posterior and take the largest: variants that look better are tried more, and
uncertain ones still get tried (Thompson sampling). The arithmetic (:class:`Arm`, :func:`choose`)
is :mod:`agentlightning.thompson`, which the SDK samples with too.

Offline, :class:`Bandit` is an :class:`Optimiser`: each pull runs one training task with the
sampled variant (``ctx.evaluate``) and updates its arm; it returns the variant with the best
posterior mean. Online, :mod:`agentlightning.rl.optimisers.bandit_service` picks a variant for
every task of an agent with ``config.bandit.enabled`` and learns from the rewards the platform
stores, with the same arithmetic; an SDK-wrapped agent samples locally from the posteriors
``GET /api/v2/agents/{ref}/bandit`` reports.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentlightning.rl.optimisers.base import (
    AgentResources,
    Optimiser,
    OptimiserContext,
    OptimiserResult,
    register,
)
from agentlightning.thompson import DEFAULT_TASK_TYPE, INCUMBENT, Arm, PosteriorKind, choose

__all__ = [
    "DEFAULT_TASK_TYPE",
    "INCUMBENT",
    "Arm",
    "Bandit",
    "BanditConfig",
    "BanditPolicy",
    "PosteriorKind",
    "Variant",
    "choose",
    "parse_variants",
]

MAX_VARIANTS = 20


class Variant(BaseModel):
    """One declared variant: a name and the resources it overrides (unset: the agent's own)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    system_prompt: str | None = Field(default=None, max_length=20_000)
    model: str | None = Field(default=None, max_length=200)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    tools: list[str] | None = Field(default=None, max_length=50)

    def overrides(self) -> dict[str, Any]:
        """The fields this variant sets."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}

    def apply(self, resources: AgentResources) -> AgentResources:
        """``resources`` with this variant's overrides (and its name)."""
        changes = self.overrides()
        if "tools" in changes:
            changes["tools"] = tuple(changes["tools"])
        return resources.replace(**changes, variant=self.name)


class BanditPolicy(BaseModel):
    """An agent's ``config.bandit`` (the online bandit, ``bandit_service``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    posterior: PosteriorKind = "beta"
    #: The agent's own resources compete as the variant ``incumbent``.
    include_incumbent: bool = True


def check_unique_names(variants: Sequence[Variant]) -> None:
    """Refuse two variants with one name (``ValueError``)."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError("variant names must be unique")


def parse_variants(raw: Any) -> list[Variant]:
    """Validate a declared ``variants`` list (unique names); raises ``ValueError`` naming the problem."""
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ValueError("variants must be a list of objects with a name")
    try:
        variants = [Variant.model_validate(v) for v in raw]
    except ValidationError as exc:
        raise ValueError(f"invalid variant: {exc.errors()[0]['msg']}") from exc
    check_unique_names(variants)
    if len(variants) > MAX_VARIANTS:
        raise ValueError("at most 20 variants")
    return variants


class BanditConfig(BaseModel):
    """The settings of an offline run, read from ``ctx.config`` (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    variants: list[dict[str, Any]] = Field(default_factory=list)
    #: Pulls in all: one training task run with one variant each.
    pulls: int = Field(default=100, ge=1, le=100_000)
    posterior: PosteriorKind = "beta"
    #: Let the incumbent's own resources compete as the variant ``incumbent``.
    include_incumbent: bool = True
    #: Report progress every this many pulls.
    report_every: int = Field(default=10, ge=1, le=10_000)
    seed: int = 0


@register
class Bandit(Optimiser):
    """Offline Thompson sampling over declared variants; returns the best variant overall."""

    name = "bandit"

    async def optimise(self, ctx: OptimiserContext) -> OptimiserResult:
        """Pull arms on training tasks (one task per pull) and return the variant with the best posterior."""
        cfg = BanditConfig.model_validate(dict(ctx.config))
        rng = random.Random(cfg.seed)
        variants = {v.name: v for v in parse_variants(cfg.variants)}
        if not variants:
            raise ValueError("bandit needs declared variants (config.variants)")
        resources = {name: v.apply(ctx.incumbent) for name, v in variants.items()}
        if cfg.include_incumbent and INCUMBENT not in resources:
            resources[INCUMBENT] = ctx.incumbent
        names = list(resources)
        tasks = list(ctx.train_tasks)
        if not tasks:
            raise ValueError("bandit needs training tasks")

        # arms[task_type][variant]; one posterior per (task type, variant)
        arms: dict[str, dict[str, Arm]] = {}
        order: list[int] = []
        total_reward = 0.0
        pulls_done = 0
        for pull in range(1, cfg.pulls + 1):
            if ctx.should_stop():
                break
            if not order:  # go through the training tasks in a fresh random order, again and again
                order = list(range(len(tasks)))
                rng.shuffle(order)
            task = tasks[order.pop()]
            task_type = task.task_type or DEFAULT_TASK_TYPE
            type_arms = arms.setdefault(task_type, {})
            name = choose(type_arms, names, cfg.posterior, rng)
            arm = type_arms.setdefault(name, Arm())
            (reward,) = await ctx.evaluate(resources[name], [task])
            arm.pulls += 1
            arm.update(reward)
            total_reward += min(1.0, max(0.0, float(reward)))
            pulls_done = pull
            if pull % cfg.report_every == 0 or pull == cfg.pulls:
                await ctx.report(pull, _progress(arms, names, total_reward, pull, cfg.posterior))

        overall = {name: _pooled(arms, name) for name in names}
        best = max(names, key=lambda n: (overall[n].mean(cfg.posterior), overall[n].observations, n == INCUMBENT))
        incumbent_arm = overall.get(INCUMBENT)
        candidates = [
            {
                "round": 0,
                "variant": name,
                "resources": resources[name].as_dict(),
                "score": _mean_reward(overall[name]),
                "posterior": overall[name].as_dict(cfg.posterior),
                "pull_share": overall[name].pulls / pulls_done if pulls_done else 0.0,
                "per_task_type": {t: a[name].as_dict(cfg.posterior) for t, a in sorted(arms.items()) if name in a},
            }
            for name in names
        ]
        return OptimiserResult(
            best=resources[best],
            best_score=_mean_reward(overall[best]),
            incumbent_score=_mean_reward(incumbent_arm) if incumbent_arm else 0.0,
            candidates=candidates,
        )


def _pooled(arms: Mapping[str, Mapping[str, Arm]], name: str) -> Arm:
    """One variant's arms of every task type, added up."""
    out = Arm()
    for type_arms in arms.values():
        arm = type_arms.get(name)
        if arm is None:
            continue
        out.alpha += arm.alpha - 1
        out.beta += arm.beta - 1
        out.pulls += arm.pulls
        out.observations += arm.observations
        out.reward_sum += arm.reward_sum
        out.reward_sq_sum += arm.reward_sq_sum
    return out


def _mean_reward(arm: Arm) -> float:
    return arm.reward_sum / arm.observations if arm.observations else 0.0


def _progress(
    arms: Mapping[str, Mapping[str, Arm]], names: Sequence[str], total: float, pulls: int, kind: PosteriorKind
) -> dict[str, float]:
    """A progress point: mean reward so far and each variant's share of the pulls and posterior mean."""
    point = {"reward": total / pulls, "pulls": float(pulls)}
    for name in names:
        pooled = _pooled(arms, name)
        point[f"share/{name}"] = pooled.pulls / pulls
        point[f"posterior/{name}"] = pooled.mean(kind)
    return point
