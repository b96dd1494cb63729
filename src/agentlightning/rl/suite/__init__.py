"""The built-in verifiable suite: train and held-out tasks with machine-checkable answers.

``install_suite(ctx)`` (or ``agentlightning rl suite install``) installs it; ``load_suite_tasks``
reads a split back for the optimisers and the Auto-RL promotion gate.
"""

from agentlightning.rl.suite.service import SuiteSummary, install_suite, load_suite_tasks

__all__ = ["SuiteSummary", "install_suite", "load_suite_tasks"]
