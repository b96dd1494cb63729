"""Agent optimisers: ``apo`` (prompt), ``bandit`` (variants), ``grpo`` (LoRA fine-tuning).

Importing this package registers the optimisers in :data:`~.base.OPTIMISERS`.
"""

from agentlightning.rl.optimisers import apo, bandit  # noqa: F401
