"""TEMPORARY stand-in for ``agentlightning.rollouts.verifiers.verify`` until the rollouts branch is merged.

Only ``exact``, ``numeric`` and ``contains`` specs; delete this module once the real one is here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VerifierResult:
    """Score in [0, 1], whether it passed, and why."""

    score: float
    passed: bool
    detail: str = ""


def verify(spec: Mapping[str, Any], output: str) -> VerifierResult:
    """Score ``output`` against ``spec`` (subset of the rollouts contract)."""
    kind = spec.get("type")
    if kind == "numeric":
        numbers = re.findall(r"-?\d+(?:\.\d+)?", output.replace(",", ""))
        if not numbers:
            return VerifierResult(0.0, False, "no number")
        ok = abs(float(numbers[-1]) - float(spec["expected"])) <= float(spec.get("tolerance", 1e-6))
        return VerifierResult(float(ok), ok)
    if kind == "contains":
        expected = spec["expected"]
        items = [expected] if isinstance(expected, str) else list(expected)
        hits = [str(i).lower() in output.lower() for i in items]
        ok = all(hits) if spec.get("all", True) else any(hits)
        return VerifierResult(float(ok), ok)
    ok = output.strip() == str(spec.get("expected", "")).strip()
    return VerifierResult(float(ok), ok)
