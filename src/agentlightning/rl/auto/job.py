"""The agent-optimisation job: what the RL manager runs for ``apo | bandit | grpo`` experiments.

It runs in the manager's own process (the optimisers wait on the LLM, they do not burn CPU on
the event loop) behind the same :class:`~agentlightning.rl.backends.base.TrainingHandle` the
classic jobs use, so the manager streams its progress, forwards stop requests, renews its lease
and recovers it in the same way:

1. load the agent's current (incumbent) resources, the training and held-out tasks (the
   experiment's inline tasks, else the built-in suite's ``train`` / ``heldout`` splits) and the
   agent's recent low-reward rollouts;
2. run the optimiser with an :class:`~agentlightning.rl.optimisers.base.OptimiserContext`
   (evaluator = the agent's runtime in-process, critic = the agent's LLM, report = the
   experiment's metric points, should_stop = a stop request, or the budget spent);
3. stream every candidate as an ``evaluation`` metric point;
4. run the gate: incumbent and best candidate on the SAME held-out tasks, exact one-sided
   McNemar test at the experiment's ``alpha``; promote through :mod:`.history` only on a
   significant win (and only if ``config.promote``);
5. end with the decision, the best resources and the scores in the experiment's
   ``metrics.final_evaluation``.

After a restart the job runs again from the start (the optimisers keep no state between runs
other than files in their ``workdir``); an experiment that already promoted does not promote twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentlightning.agents.service import AgentService
from agentlightning.errors import AppError
from agentlightning.rl.auto.evaluator import AgentEvaluator, LLMCritic, resources_of
from agentlightning.rl.auto.gate import decide
from agentlightning.rl.auto.history import HistoryService
from agentlightning.rl.auto.triggers import TriggerService
from agentlightning.rl.backends.base import Outcome, TrainingHandle
from agentlightning.rl.classic.runner import TrainingJob
from agentlightning.rl.optimisers.base import OPTIMISERS, OptimiserContext, VerifiableTask
from agentlightning.vocabulary import AgentAlgorithm

if TYPE_CHECKING:
    from agentlightning.core.context import AppContext

__all__ = ["AgentOptimisationHandle", "launch", "optimiser_available", "optimiser_config"]

log = logging.getLogger(__name__)


def _load(algorithm: str) -> type[Any] | None:
    if algorithm not in OPTIMISERS:
        with contextlib.suppress(ImportError):
            importlib.import_module(f"agentlightning.rl.optimisers.{algorithm}")
    return OPTIMISERS.get(algorithm)


def optimiser_available(algorithm: AgentAlgorithm | str) -> bool:
    """True when the optimiser is installed here (its module imports and registers it)."""
    return _load(str(algorithm)) is not None


class JobFailed(RuntimeError):
    """The job cannot run (no tasks, no optimiser, agent gone)."""


def _inline(tasks: Sequence[Mapping[str, Any]]) -> list[VerifiableTask]:
    return [
        VerifiableTask(
            id=str(t["id"]),
            prompt=str(t["prompt"]),
            verifier=dict(t["verifier"]),
            task_type=str(t.get("task_type") or "default"),
            context=dict(t.get("context") or {}),
        )
        for t in tasks
    ]


async def load_tasks(
    ctx: AppContext, config: Mapping[str, Any], agent_type: str
) -> tuple[list[VerifiableTask], list[VerifiableTask]]:
    """Training and held-out tasks: the experiment's inline ones, else the suite's splits."""
    if config.get("train") is not None and config.get("heldout") is not None:
        train, heldout = _inline(config["train"]), _inline(config["heldout"])
    else:
        try:
            from agentlightning.rl.suite import load_suite_tasks
        except ImportError as exc:
            raise JobFailed("the verifiable task suite is not installed on this server") from exc
        suite = str(config.get("suite") or "builtin")
        types = config.get("task_types")
        train, heldout = [], []
        for agent_filter in (agent_type, None):
            train = await load_suite_tasks(
                ctx.db,
                split="train",
                task_types=types,
                agent_type=agent_filter,
                limit=config["train_tasks"],
                suite=suite,
            )
            heldout = await load_suite_tasks(
                ctx.db,
                split="heldout",
                task_types=types,
                agent_type=agent_filter,
                limit=config["heldout_tasks"],
                suite=suite,
            )
            if train and heldout:
                break
    overlap = {t.id for t in train} & {t.id for t in heldout}
    heldout = [t for t in heldout if t.id not in overlap]  # the gate never sees a task the optimiser saw
    if not train or not heldout:
        raise JobFailed(
            f"no verifiable tasks to optimise on (train {len(train)}, held-out {len(heldout)}); "
            "install the suite (agentlightning rl suite install) or give config.train and config.heldout"
        )
    return train, heldout


async def _low_reward_rollouts(ctx: AppContext, agent_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The agent's recent rollouts with a low reward, for the optimiser's critic (empty if unavailable)."""
    try:
        from agentlightning.rollouts.schemas import RolloutFilters
        from agentlightning.rollouts.service import RolloutService

        filters = RolloutFilters(agent_id=agent_id, max_reward=0.49, rewarded=True, page_size=limit)
        page = await RolloutService(ctx).list(None, filters)  # the system itself: every owner's rollouts
        return [{"input": r["input"], "output": r["output"], "reward": r["reward"]} for r in page["items"]]
    except Exception:  # noqa: BLE001 - optional context for the optimiser, never a reason to fail
        return []


class AgentOptimisationHandle(TrainingHandle):
    """An agent optimisation running as an asyncio task in this process."""

    def __init__(self, ctx: AppContext, job: TrainingJob, *, actor: str | None) -> None:
        super().__init__(job)
        self.ctx = ctx
        self.actor = actor
        self._updates: list[dict[str, Any]] = []
        self._stop = False
        self._started = time.monotonic()
        self.evaluator: AgentEvaluator | None = None
        self._task = asyncio.create_task(self._main(), name=f"agent-optimisation-{job.experiment_id}")

    # ---------------------------------------------------------------- handle protocol
    async def drain(self) -> list[dict[str, Any]]:
        """Updates reported since the last call."""
        out, self._updates = self._updates, []
        return out

    async def request_stop(self) -> None:
        """Ask the optimiser to stop at its next check (no promotion then)."""
        self._stop = True

    async def kill(self) -> None:
        """Cancel the run now."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        if self.outcome is None:
            self.outcome = Outcome(error="killed")

    # ---------------------------------------------------------------- the run
    @property
    def config(self) -> dict[str, Any]:
        """The experiment's stored configuration."""
        return self.job.config

    def _budget_spent(self) -> bool:
        cfg = self.config
        spent = self.evaluator is not None and self.evaluator.evaluations >= int(cfg["max_evaluations"])
        return spent or time.monotonic() - self._started >= float(cfg["max_wall_seconds"])

    def _should_stop(self) -> bool:
        return self._stop or self._budget_spent()

    def _evaluations(self) -> int:
        return self.evaluator.evaluations if self.evaluator is not None else 0

    async def _report(self, step: int, metrics: Mapping[str, float]) -> None:
        values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._updates.append(
            {
                "type": "progress",
                "timesteps": self._evaluations(),
                "total_timesteps": int(self.config["max_evaluations"]),
                "step": step,
                **values,
            }
        )

    async def _main(self) -> None:
        try:
            result = await self._run()
            self.outcome = Outcome(result=result)
        except asyncio.CancelledError:
            self.outcome = Outcome(error="cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as the experiment's error
            log.exception("agent optimisation %s failed", self.experiment_id)
            self.outcome = Outcome(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            # The trigger ends with the experiment (the manager's ``_set_final``), not here: a run
            # that fails because the server shuts down is queued again and re-run.
        finally:
            if self.evaluator is not None:  # its pooled LLM connections (the critic's too)
                await self.evaluator.aclose()

    async def _run(self) -> dict[str, Any]:
        cfg = self.config
        experiment_id = self.experiment_id
        agent_id = int(cfg["agent_id"])
        trigger_id = int(cfg["trigger_id"]) if cfg.get("trigger_id") else None
        history = HistoryService(self.ctx)
        triggers = TriggerService(self.ctx)
        done_before = await history.for_experiment(experiment_id)
        if done_before is not None:  # a re-run after a restart: it promoted already
            evaluation = {"final": True, "timesteps": 0, "promoted": True, "promotion": done_before}
            self._updates.append({"type": "evaluation", **evaluation})
            return {"status": "completed", "timesteps": 0, "evaluation": evaluation}
        optimiser_cls = _load(str(cfg["algorithm"]))
        if optimiser_cls is None:
            raise JobFailed(f"the '{cfg['algorithm']}' optimiser is not installed")
        profile = await AgentService(self.ctx).profile(agent_id)
        incumbent = resources_of(profile)
        # Any edit of the agent from here on bumps its config_version and makes the promotion refuse.
        config_version = profile.config_version
        train, heldout = await load_tasks(self.ctx, cfg, profile.type)
        self.evaluator = AgentEvaluator(self.ctx, profile)
        workdir = Path(self.job.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        octx = OptimiserContext(
            agent_id=agent_id,
            incumbent=incumbent,
            train_tasks=train,
            low_reward_rollouts=await _low_reward_rollouts(self.ctx, agent_id),
            evaluate=self.evaluator,
            observe=self.evaluator.observe,
            critic=LLMCritic(self.ctx, profile, providers=self.evaluator.providers),
            config=optimiser_config(cfg, profile.config),
            report=self._report,
            should_stop=self._should_stop,
            workdir=workdir,
        )
        result = await optimiser_cls().optimise(octx)
        optimisation_evals = self._evaluations()
        for i, candidate in enumerate(result.candidates):
            entry = {k: v for k, v in candidate.items() if k != "resources"}
            resources = candidate.get("resources")
            if hasattr(resources, "as_dict"):
                resources = resources.as_dict()
            self._updates.append(
                {"type": "evaluation", "timesteps": i, "candidate": i, "resources": resources, **_jsonable(entry)}
            )
        summary: dict[str, Any] = {
            "final": True,
            "timesteps": optimisation_evals,
            "algorithm": cfg["algorithm"],
            "incumbent_resources": incumbent.as_dict(),
            "best_resources": result.best.as_dict(),
            "train_best_score": result.best_score,
            "train_incumbent_score": result.incumbent_score,
            "candidates": len(result.candidates),
            "train_tasks": [t.id for t in train],
            "heldout_tasks": [t.id for t in heldout],
            "evaluations": optimisation_evals,
        }
        if self._stop:
            summary["promoted"] = False
            summary["reason"] = "stopped before the gate"
            self._updates.append({"type": "evaluation", **_jsonable(summary)})
            return {"status": "stopped", "timesteps": optimisation_evals, "evaluation": summary}
        # The gate: both on the same held-out tasks, paired.
        if result.best == incumbent:
            inc_scores = cand_scores = await self.evaluator(incumbent, heldout)
        else:
            inc_scores = await self.evaluator(incumbent, heldout)
            cand_scores = await self.evaluator(result.best, heldout)
        decision = decide(inc_scores, cand_scores, alpha=float(cfg["alpha"]))
        summary["gate"] = decision.as_dict()
        summary["heldout_incumbent"] = inc_scores
        summary["heldout_candidate"] = cand_scores
        promoted = None
        reason = "significant win" if decision.promote else "no significant win on held-out tasks"
        if decision.promote and cfg.get("promote", True):
            try:
                promoted = await history.promote(
                    agent_id,
                    result.best,
                    decision,
                    expected_config_version=config_version,
                    experiment_id=experiment_id,
                    trigger_id=trigger_id,
                    actor=self.actor,
                )
            except AppError as exc:  # e.g. RESOURCES_CHANGED: the agent was edited during the run
                reason = f"not promoted: {exc.message}"
                summary["refused"] = {"code": exc.code, "message": exc.message, "details": exc.details}
            except Exception as exc:  # noqa: BLE001 - recorded as the reason, never a second promotion try
                reason = f"not promoted: {exc}"
                summary["refused"] = {"code": "PROMOTION_FAILED", "message": str(exc)}
        elif decision.promote:
            reason = "significant win; promotion disabled for this experiment (config.promote=false)"
        summary["promoted"] = promoted is not None
        summary["promotion"] = promoted
        summary["reason"] = reason
        self._updates.append({"type": "evaluation", **_jsonable(summary)})
        if trigger_id:
            decided = {"reason": reason, **decision.as_dict()}
            if "refused" in summary:
                decided["refused"] = summary["refused"]
            await triggers.finish_trigger(trigger_id, "promoted" if promoted else "rejected", _jsonable(decided))
        return {"status": "completed", "timesteps": self._evaluations(), "evaluation": _jsonable(summary)}


def optimiser_config(cfg: Mapping[str, Any], agent_config: Mapping[str, Any]) -> dict[str, Any]:
    """The optimiser's ``ctx.config``: the experiment's ``options``, its budget, and the agent's
    declared ``config.variants`` (what ``bandit`` chooses among) unless the options give their own."""
    out = dict(cfg.get("options") or {})
    if out.get("variants") is None and agent_config.get("variants"):
        out["variants"] = list(agent_config["variants"])
    out["max_evaluations"] = int(cfg["max_evaluations"])
    return out


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def launch(ctx: AppContext, job: TrainingJob, *, actor: str | None) -> AgentOptimisationHandle:
    """Start an agent optimisation in this process and return its handle."""
    return AgentOptimisationHandle(ctx, job, actor=actor)
