"""Helpers of the workflow tests: the sample definition, waiting for a run to finish."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import poll_until_finished


def sample_definition(agent: str) -> dict[str, Any]:
    """Seven steps: a parallel pair (``plan`` | ``calc``), a condition choosing ``big`` or
    ``small``, a fan-out over ``input.words`` and a fan-in (``final``)."""
    return {
        "steps": [
            {"id": "plan", "kind": "agent", "agent": agent, "task": "plan {{ input.topic }}"},
            {
                "id": "calc",
                "kind": "tool",
                "tool": "calculator",
                "args": {"expression": "{{ input.a }} * {{ input.b }}"},
            },
            {
                "id": "check",
                "kind": "condition",
                "depends_on": ["calc"],
                "if": "steps.calc.result > 10",
                "then": ["big"],
                "else": ["small"],
            },
            {"id": "big", "kind": "agent", "agent": agent, "task": "big {{ steps.calc.result }}"},
            {"id": "small", "kind": "agent", "agent": agent, "task": "small {{ steps.calc.result }}"},
            {
                "id": "fan",
                "kind": "agent",
                "agent": agent,
                "depends_on": ["plan"],
                "for_each": "input.words",
                "task": "item {{ index }} {{ item }}",
            },
            {
                "id": "final",
                "kind": "agent",
                "agent": agent,
                "depends_on": ["fan", "big", "small"],
                "task": "final {{ steps.fan | length }} {{ steps.big }}",
            },
        ],
        "output": {"final": "{{ steps.final }}", "fan": "{{ steps.fan }}", "small": "{{ steps.small }}"},
    }


SAMPLE_INPUT = {"topic": "owls", "a": 6, "b": 7, "words": ["x", "y", "z"]}


def check_sample_output(output: dict[str, Any]) -> None:
    """What the scripted LLM (``Answer: <task>``) makes of :func:`sample_definition` and :data:`SAMPLE_INPUT`."""
    assert output["fan"] == ["Answer: item 0 x", "Answer: item 1 y", "Answer: item 2 z"], output
    assert output["final"] == "Answer: final 3 Answer: big 42", output
    assert output["small"] is None, output


async def wait_for_run(
    client: httpx.AsyncClient, headers: dict[str, str], run_id: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll a run until it is finished."""
    url = f"/api/v2/workflow-runs/{run_id}"
    return await poll_until_finished(
        client, headers, url, ("completed", "failed", "cancelled"), timeout, 0.1, f"run {run_id}"
    )
