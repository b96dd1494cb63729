"""Run one training job to the end: build (or resume) the SB3 model, learn, save, evaluate.

:func:`run_training` is the single code path for every place training happens: a child process
(``backends.subprocess``), a Ray task (``backends.ray``) and the ``rl train`` CLI all call it with
their own :class:`~agentlightning.rl.classic.callback.Reporter`. It blocks the calling thread for
the whole run, which is why it never runs on the API event loop.

Files of experiment ``workdir``:

- ``checkpoints/step_<timesteps>_steps.zip`` every ``checkpoint_freq`` timesteps,
- ``final_model.zip`` when training ends (completed or stopped).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from agentlightning.rl.classic import algorithms, envs
from agentlightning.rl.classic.callback import (
    Reporter,
    ReportingCheckpointCallback,
    ReportingEvalCallback,
    StreamingCallback,
    checkpoint_update,
)
from agentlightning.rl.config import ExperimentConfig

__all__ = ["FINAL_MODEL", "TrainingJob", "run_training"]

FINAL_MODEL = "final_model.zip"


@dataclass(frozen=True)
class TrainingJob:
    """Everything a worker needs to run (or resume) one experiment; plain data, picklable."""

    experiment_id: int
    config: dict[str, Any]
    workdir: str
    resume_from: str | None = None
    torch_threads: int = 1
    report_interval_s: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def _build_env(cfg: ExperimentConfig, n_envs: int, seed: int | None) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(cfg.environment, n_envs=n_envs, seed=seed, env_kwargs=cfg.env_kwargs or None)


def _callbacks(job: TrainingJob, cfg: ExperimentConfig, reporter: Reporter) -> tuple[StreamingCallback, list[Any]]:
    from stable_baselines3.common.callbacks import EvalCallback

    streaming = StreamingCallback(reporter, cfg.total_timesteps, report_interval_s=job.report_interval_s)
    callbacks: list[Any] = [streaming]
    if cfg.checkpoint_freq > 0:
        callbacks.append(
            ReportingCheckpointCallback(
                reporter,
                save_freq=max(cfg.checkpoint_freq // cfg.n_envs, 1),
                save_path=os.path.join(job.workdir, "checkpoints"),
            )
        )
    if cfg.evaluation.freq > 0:
        eval_seed = None if cfg.seed is None else cfg.seed + 10_000
        callbacks.append(
            EvalCallback(
                _build_env(cfg, 1, eval_seed),
                n_eval_episodes=cfg.evaluation.n_episodes,
                eval_freq=max(cfg.evaluation.freq // cfg.n_envs, 1),
                deterministic=cfg.evaluation.deterministic,
                callback_after_eval=ReportingEvalCallback(reporter),
                verbose=0,
            )
        )
    return streaming, callbacks


def run_training(job: TrainingJob, reporter: Reporter) -> dict[str, Any]:
    """Train ``job`` to ``total_timesteps`` or until a stop request; return the outcome.

    The result is ``{"status": "completed" | "stopped", "timesteps", "final_model",
    "evaluation", "duration_s", "resumed_from"}``. Exceptions propagate: the backend records them
    as the experiment's error.
    """
    import torch
    from stable_baselines3.common.callbacks import CallbackList

    from agentlightning.rl.classic.evaluation import evaluate_model

    torch.set_num_threads(job.torch_threads)
    started = time.monotonic()
    cfg = ExperimentConfig.model_validate(job.config)
    if cfg.custom_env:
        envs.ensure_registered(envs.CustomEnvSpec.from_dict(cfg.custom_env))
    info = algorithms.get_algorithm(cfg.algorithm)
    algo_cls = info.load()
    env = _build_env(cfg, cfg.n_envs, cfg.seed)
    os.makedirs(job.workdir, exist_ok=True)
    try:
        if job.resume_from:
            model = algo_cls.load(job.resume_from, env=env, device="cpu")
            remaining = max(cfg.total_timesteps - model.num_timesteps, 0)
        else:
            kwargs = algorithms.build_kwargs(info.name, cfg.hyperparameters, env.action_space)
            model = algo_cls(cfg.policy, env, seed=cfg.seed, device="cpu", verbose=0, **kwargs)
            remaining = cfg.total_timesteps
        streaming, callbacks = _callbacks(job, cfg, reporter)
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList(callbacks),
                reset_num_timesteps=not job.resume_from,
                log_interval=None,
            )
        final_path = os.path.join(job.workdir, FINAL_MODEL)
        model.save(final_path)
        reporter.report(checkpoint_update(final_path, model.num_timesteps, final=True))
        evaluation = None
        if not streaming.stopped:
            eval_seed = None if cfg.seed is None else cfg.seed + 20_000
            evaluation = evaluate_model(
                model, cfg.model_dump(), cfg.evaluation.n_episodes, cfg.evaluation.deterministic, eval_seed
            )
            reporter.report({"type": "evaluation", "timesteps": int(model.num_timesteps), "final": True, **evaluation})
    finally:
        env.close()
    return {
        "status": "stopped" if streaming.stopped else "completed",
        "timesteps": int(model.num_timesteps),
        "final_model": os.path.abspath(final_path),
        "evaluation": evaluation,
        "duration_s": round(time.monotonic() - started, 3),
        "resumed_from": job.resume_from,
    }
