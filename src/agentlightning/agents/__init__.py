"""Agent management layer: registry, runtime loop, LLM providers, tools, task scheduling and the worker pool.

Sub-modules are imported lazily by their users; importing this package pulls in nothing heavy.
"""
