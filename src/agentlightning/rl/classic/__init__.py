"""Classic RL: Stable-Baselines3 algorithms trained on Gymnasium environments.

Every module here is free of the platform (no database, no event bus) so the same code runs in
the API's validation thread, in a child process, in a Ray worker and in the ``rl train`` CLI.
"""
