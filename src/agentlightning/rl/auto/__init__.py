"""Auto-RL: agents that improve themselves, with a statistical gate on every promotion.

- :mod:`.policy`: when and how to optimise an agent (per agent, defaults from the system config);
- :mod:`.evaluator`: runs an agent in-process with given resources on verifiable tasks;
- :mod:`.job`: the agent-optimisation job the RL manager runs for ``apo | bandit | grpo`` experiments;
- :mod:`.gate`: the exact one-sided McNemar test deciding a promotion;
- :mod:`.history`: promotions and rollbacks (the one writer of ``auto_rl_promotions``);
- :mod:`.triggers`: starting optimisations (the one writer of ``auto_rl_triggers``);
- :mod:`.monitor`: the background service that triggers by itself;
- :mod:`.status`: what ``GET /api/v2/rl/auto-status`` reports.
"""
