"""Fixtures of the deploy checks: the PostgreSQL + Redis stack (as deployed) with the scripted LLM."""

from __future__ import annotations

from tests.integration.scripted_stack import backend, fake_llm, settings  # noqa: F401 - fixtures
