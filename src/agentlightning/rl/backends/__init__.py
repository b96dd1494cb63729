"""Where training runs: a child process per experiment (default) or a Ray task (``RAY_ADDRESS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlightning.rl.backends.base import Backend, Outcome, TrainingHandle

if TYPE_CHECKING:
    from agentlightning.settings import Settings

__all__ = ["Backend", "Outcome", "TrainingHandle", "backend_name", "make_backend"]


def backend_name(settings: Settings, requested: str | None) -> str:
    """The backend an experiment runs on: the one it asks for, else Ray when ``RAY_ADDRESS`` is set."""
    if requested in ("subprocess", "ray"):
        return str(requested)
    return "ray" if settings.ray_address else "subprocess"


def make_backend(settings: Settings, name: str) -> Backend:
    """A new backend called ``name`` (see :func:`backend_name`); its owner closes it."""
    if name == "ray":
        from agentlightning.rl.backends.ray import RayBackend

        return RayBackend(settings.ray_address, settings.rl_ray_num_cpus, settings.rl_torch_threads)
    from agentlightning.rl.backends.subprocess import SubprocessBackend

    return SubprocessBackend(torch_threads=settings.rl_torch_threads)
