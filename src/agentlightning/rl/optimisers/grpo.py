"""``grpo``: fine-tune the embedded local model with GRPO (TRL) and a LoRA adapter (PEFT).

For each training task the model samples ``num_generations`` answers to the agent's system prompt
and the task; the task's verifier scores each one in [0, 1]; GRPO pushes the adapter towards the
answers that scored above their group's mean.  The base model is a local-model catalogue entry
(SmolLM2-135M-Instruct by default), converted once from its GGUF to a plain checkpoint
(:mod:`agentlightning.agents.llm.hf_models`): nothing is downloaded.

Training runs in a spawned child process (:mod:`agentlightning.rl.optimisers.grpo_train`): the
event loop only relays progress lines to ``ctx.report`` and a stop request to the child, which
stops after the current step.  It runs on a GPU when one is present (bf16), else on the CPU.

The result is the incumbent's resources with ``adapter`` set to the saved adapter directory
(``ctx.workdir/adapter``); the runtime serves such an agent through
:class:`~agentlightning.agents.llm.transformers_provider.TransformersProvider`.  Scores come from
``ctx.evaluate`` (the agent run with each resource bundle on the training tasks).  A stopped run
keeps its partial adapter on disk but returns the incumbent.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentlightning.errors import OperationFailed, ValidationFailed
from agentlightning.rl.optimisers.base import Optimiser, OptimiserContext, OptimiserResult, VerifiableTask, register
from agentlightning.rl.optimisers.grpo_train import GrpoJob, run_grpo
from agentlightning.rollouts.verifiers import validate_spec

log = logging.getLogger(__name__)

_spawn = mp.get_context("spawn")


class GrpoConfig(BaseModel):
    """The ``grpo`` settings of an experiment (bounded); keys of other algorithms are ignored."""

    model_config = ConfigDict(extra="ignore")

    #: the local model fine-tuned (a LOCAL_MODEL key; SmolLM2-135M fits a CPU)
    base_model: Literal["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"] = "smollm2-135m"
    max_steps: int = Field(default=50, ge=1, le=100_000)
    #: answers sampled per prompt (the GRPO group); at least 2 for an advantage
    num_generations: int = Field(default=4, ge=2, le=64)
    #: prompts per optimiser step (each sampled ``num_generations`` times)
    prompts_per_step: int = Field(default=1, ge=1, le=64)
    max_completion_length: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(default=5e-5, gt=0, le=1e-2)
    #: KL penalty towards the base model (0: no reference model, cheaper)
    beta: float = Field(default=0.0, ge=0, le=10)
    temperature: float = Field(default=1.0, gt=0, le=2)
    lora_r: int = Field(default=16, ge=1, le=256)
    lora_alpha: int = Field(default=32, ge=1, le=1024)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        max_length=16,
    )
    #: training tasks used (the first ones of ``ctx.train_tasks``)
    max_tasks: int = Field(default=256, ge=1, le=10_000)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: torch CPU threads of the training process (0: every core but one)
    threads: int = Field(default=0, ge=0, le=256)
    seed: int = Field(default=0, ge=0)
    #: greedy verifier reward of the tasks before and after training, measured in the child
    measure: bool = True
    #: score incumbent and candidate with ``ctx.evaluate`` (else the child's measurement)
    evaluate: bool = True

    @model_validator(mode="after")
    def _modules(self) -> GrpoConfig:
        for name in self.target_modules:
            if not name.replace("_", "").isalnum() or len(name) > 64:
                raise ValueError(f"target_modules: {name!r} is not a module name")
        return self


def parse_config(config: Mapping[str, Any]) -> GrpoConfig:
    """The experiment's config as :class:`GrpoConfig`; :class:`ValidationFailed` when out of bounds."""
    try:
        return GrpoConfig.model_validate(dict(config))
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ValidationFailed(
            message=f"invalid grpo config: {exc.error_count()} error(s)", details={"errors": errors}
        ) from None


class _QueueReporter:
    """The child's side of the pipe: updates into a queue, the stop flag from an event."""

    def __init__(self, updates: Any, stop: Any) -> None:
        self.updates = updates
        self.stop = stop

    def report(self, update: dict[str, Any]) -> None:
        self.updates.put(update)

    def stop_requested(self) -> bool:
        return bool(self.stop.is_set())


def _child_main(job: GrpoJob, updates: Any, stop: Any) -> None:
    """Entry point of the training process: the result or the error is the last message."""
    parent = mp.parent_process()
    if parent is not None:  # die with the parent: an orphan would train on for nobody

        def _watch() -> None:
            from multiprocessing.connection import wait

            wait([parent.sentinel])
            os._exit(70)

        threading.Thread(target=_watch, name="parent-watch", daemon=True).start()
    try:
        updates.put({"type": "result", "result": run_grpo(job, _QueueReporter(updates, stop))})
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent
        updates.put({"type": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    finally:
        updates.close()
        updates.join_thread()


async def train_in_child(
    job: GrpoJob,
    report: Callable[[int, Mapping[str, float]], Awaitable[None]],
    should_stop: Callable[[], bool],
    *,
    poll_seconds: float = 0.5,
) -> dict[str, Any]:
    """Run :func:`run_grpo` in a spawned process, relaying progress and stop; its result dict."""
    updates = _spawn.Queue()
    stop = _spawn.Event()
    process = _spawn.Process(target=_child_main, args=(job, updates, stop), name="agl-grpo", daemon=True)
    await asyncio.to_thread(process.start)
    last_step = 0
    try:
        while True:
            if should_stop() and not stop.is_set():
                stop.set()
            alive = process.is_alive()  # read before the queue: all it sent before exiting is queued
            try:
                item = await asyncio.to_thread(updates.get, True, poll_seconds)
            except queue_mod.Empty:
                if not alive:
                    raise OperationFailed(
                        message=f"grpo training process exited with code {process.exitcode} without a result"
                    ) from None
                continue
            kind = item.get("type")
            if kind == "progress":
                last_step = int(item["step"])
                await report(last_step, item["metrics"])
            elif kind == "measured" and item.get("reward") is not None:
                await report(last_step, {f"reward_{item['phase']}": float(item["reward"])})
            elif kind == "error":
                log.error("grpo training failed: %s\n%s", item["error"], item.get("traceback", ""))
                raise OperationFailed(message=f"grpo training failed: {item['error']}")
            elif kind == "result":
                return dict(item["result"])
    except asyncio.CancelledError:
        process.kill()  # nobody will read its result: no reason to let it finish the step
        raise
    finally:
        if process.is_alive():
            stop.set()
            await asyncio.to_thread(process.join, 30)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, 10)


def usable_tasks(tasks: Sequence[VerifiableTask]) -> list[VerifiableTask]:
    """The tasks whose verifier the training process can run (validated; ``python`` ones left out).

    A ``python`` verifier is a function registered in the server's process; the spawned training
    process does not have it, so such tasks are skipped.  None left is a :class:`ValidationFailed`.
    """
    usable = []
    for task in tasks:
        validate_spec(task.verifier, field=f"train_tasks.{task.id}.verifier")
        if task.verifier.get("type") != "python":
            usable.append(task)
    if len(usable) < len(tasks):
        log.warning("grpo: %d task(s) with a python verifier skipped", len(tasks) - len(usable))
    if not usable:
        raise ValidationFailed(
            message="grpo needs at least one training task with a verifier of type "
            "exact, numeric, contains, regex or json_schema"
        )
    return usable


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@register
class GrpoOptimiser(Optimiser):
    """GRPO + LoRA on the local model; the candidate is the incumbent with the trained ``adapter``."""

    name = "grpo"

    async def optimise(self, ctx: OptimiserContext) -> OptimiserResult:
        """Train an adapter on ``ctx.train_tasks`` and return it as the candidate."""
        cfg = parse_config(ctx.config)
        tasks = usable_tasks(ctx.train_tasks)[: cfg.max_tasks]
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        job = GrpoJob(
            base_model=cfg.base_model,
            model_dir=_model_dir(),
            workdir=str(ctx.workdir),
            system_prompt=ctx.incumbent.system_prompt,
            tasks=[
                {"id": t.id, "prompt": t.prompt, "verifier": dict(t.verifier), "context": dict(t.context)}
                for t in tasks
            ],
            config=cfg.model_dump(),
        )
        outcome = await train_in_child(job, ctx.report, ctx.should_stop)
        candidate = ctx.incumbent.replace(adapter=outcome["adapter"])
        entry: dict[str, Any] = {"round": 0, "resources": candidate.as_dict(), **outcome}
        before = outcome.get("reward_before")
        after = outcome.get("reward_after")
        if outcome["stopped"]:
            score = float(before) if before is not None else 0.0
            return OptimiserResult(ctx.incumbent, score, score, [{**entry, "score": None}])
        if cfg.evaluate:
            incumbent_score = _mean(await ctx.evaluate(ctx.incumbent, tasks))
            best_score = _mean(await ctx.evaluate(candidate, tasks))
        else:
            incumbent_score = float(before) if before is not None else 0.0
            best_score = float(after) if after is not None else 0.0
        await ctx.report(int(outcome["steps"]), {"incumbent_score": incumbent_score, "candidate_score": best_score})
        return OptimiserResult(candidate, best_score, incumbent_score, [{**entry, "score": best_score}])


def _model_dir() -> str | None:
    """``LOCAL_MODEL_DIR`` from the settings (where the converted checkpoint is cached)."""
    try:
        from agentlightning.settings import get_settings

        return get_settings().local_model_dir
    except Exception:  # noqa: BLE001 - no server settings: the default directory
        return None


__all__ = ["GrpoConfig", "GrpoOptimiser", "parse_config", "train_in_child"]
