"""Rollouts: every run of an agent with its spans and rewards (the data agents learn from).

``service`` is the one writer of ``rollouts`` and ``rewards``; ``capture`` writes a task run's
rollout with the task's outcome; ``verifiers`` score answers; ``export`` writes TRL/VERL datasets.
"""
