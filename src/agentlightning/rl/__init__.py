"""RL orchestrator: experiment lifecycle, training backends and the classic (SB3) trainer.

Layout:

- ``config``       -- the experiment configuration model and its validation.
- ``experiments``  -- the experiment service (table access, state machine, stop, evaluation).
- ``manager``      -- the background service that queues, launches, supervises and recovers runs.
- ``backends``     -- where a run executes: a child process (default) or a Ray task.
- ``classic``      -- Stable-Baselines3 algorithms on Gymnasium environments (runner, callbacks,
                      environment registry, evaluation).

Importing this package is cheap: torch, Stable-Baselines3 and Ray are imported lazily by the
modules that need them.
"""
