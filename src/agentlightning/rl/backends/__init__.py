"""Where training runs: a child process per experiment (default) or a Ray task (``RAY_ADDRESS``)."""

from __future__ import annotations

from agentlightning.rl.backends.base import Backend, Outcome, TrainingHandle

__all__ = ["Backend", "Outcome", "TrainingHandle"]
