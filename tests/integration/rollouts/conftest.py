"""Rollout tests reuse the agent tests' fixtures: the scripted LLM server and settings that use it."""

from __future__ import annotations

from tests.integration.agents.conftest import admin, fake_llm, settings

__all__ = ["admin", "fake_llm", "settings"]
