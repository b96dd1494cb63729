"""SB3 callbacks that connect a training run to the platform.

- :class:`StreamingCallback` reports progress (timesteps, episode reward mean, fps, losses) to a
  :class:`Reporter` at most every ``report_interval_s`` and stops training when the reporter says
  a stop was requested (checked every ``stop_check_interval_s``, i.e. well within one rollout).
- :class:`ReportingCheckpointCallback` is SB3's :class:`CheckpointCallback` that also reports
  each checkpoint it saves.
- :class:`ReportingEvalCallback` is plugged into SB3's :class:`EvalCallback` as
  ``callback_after_eval`` to report periodic evaluations.

A reporter is whatever carries updates out of the training process: a multiprocessing queue, a
Ray actor, a Rich progress bar, or a list in a test.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Protocol, runtime_checkable

from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback

__all__ = [
    "ReportingCheckpointCallback",
    "ReportingEvalCallback",
    "Reporter",
    "StreamingCallback",
    "finite",
]


@runtime_checkable
class Reporter(Protocol):
    """Where a training run sends its updates and learns about stop requests."""

    def report(self, update: dict[str, Any]) -> None:
        """Deliver one update (a JSON-serialisable dict with a ``type`` key)."""

    def stop_requested(self) -> bool:
        """Whether the run should stop as soon as possible."""


def finite(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, NaN or infinite (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class StreamingCallback(BaseCallback):
    """Streams training progress to a :class:`Reporter` and honours stop requests."""

    def __init__(
        self,
        reporter: Reporter,
        total_timesteps: int,
        *,
        report_interval_s: float = 1.0,
        stop_check_interval_s: float = 0.25,
    ) -> None:
        super().__init__()
        self.reporter = reporter
        self.total_timesteps = total_timesteps
        self.report_interval_s = report_interval_s
        self.stop_check_interval_s = stop_check_interval_s
        self.stopped = False
        self._t0 = 0.0
        self._start_timesteps = 0
        self._last_report = 0.0
        self._last_stop_check = 0.0

    def _on_training_start(self) -> None:
        self._t0 = self._last_report = self._last_stop_check = time.monotonic()
        self._start_timesteps = self.model.num_timesteps

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self._last_stop_check >= self.stop_check_interval_s:
            self._last_stop_check = now
            if self.reporter.stop_requested():
                self.stopped = True
                return False
        if now - self._last_report >= self.report_interval_s:
            self._last_report = now
            self.reporter.report(self.progress())
        return True

    def _on_training_end(self) -> None:
        self.reporter.report(self.progress())

    def progress(self) -> dict[str, Any]:
        """The current progress update (also used for the final one)."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        episodes = list(self.model.ep_info_buffer or [])
        logged = dict(self.logger.name_to_value) if self.logger is not None else {}
        train = {key.removeprefix("train/"): finite(v) for key, v in logged.items() if key.startswith("train/")}
        return {
            "type": "progress",
            "timesteps": int(self.model.num_timesteps),
            "total_timesteps": self.total_timesteps,
            "ep_rew_mean": finite(sum(e["r"] for e in episodes) / len(episodes)) if episodes else None,
            "ep_len_mean": finite(sum(e["l"] for e in episodes) / len(episodes)) if episodes else None,
            "fps": finite((self.model.num_timesteps - self._start_timesteps) / elapsed),
            "time_elapsed": round(elapsed, 3),
            "losses": {k: v for k, v in train.items() if "loss" in k},
            "train": {k: v for k, v in train.items() if "loss" not in k},
            "exploration_rate": finite(logged.get("rollout/exploration_rate")),
        }


class ReportingCheckpointCallback(CheckpointCallback):
    """SB3's checkpoint callback, reporting ``{"type": "checkpoint", ...}`` for each save."""

    def __init__(self, reporter: Reporter, save_freq: int, save_path: str, name_prefix: str = "step") -> None:
        super().__init__(save_freq=save_freq, save_path=save_path, name_prefix=name_prefix)
        self.reporter = reporter

    def _on_step(self) -> bool:
        saving = self.n_calls % self.save_freq == 0
        result = super()._on_step()
        if saving:
            path = self._checkpoint_path(extension="zip")
            self.reporter.report(checkpoint_update(path, self.num_timesteps))
        return result


def checkpoint_update(path: str, timesteps: int, *, final: bool = False) -> dict[str, Any]:
    """The update announcing a saved model file."""
    return {
        "type": "checkpoint",
        "timesteps": int(timesteps),
        "path": os.path.abspath(path),
        "size_bytes": os.path.getsize(path),
        "final": final,
    }


class ReportingEvalCallback(BaseCallback):
    """Reports the result of each periodic evaluation run by its parent :class:`EvalCallback`."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        self.reporter = reporter

    def _on_step(self) -> bool:
        parent = self.parent
        assert isinstance(parent, EvalCallback)
        logged = parent.logger.name_to_value
        self.reporter.report(
            {
                "type": "evaluation",
                "timesteps": int(parent.num_timesteps),
                "mean_reward": finite(parent.last_mean_reward),
                "mean_ep_length": finite(logged.get("eval/mean_ep_length")),
                "n_episodes": parent.n_eval_episodes,
                "deterministic": parent.deterministic,
            }
        )
        return True
