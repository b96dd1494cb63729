"""Verifiers score answers; invalid specs are refused; hostile patterns and huge inputs stay bounded."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from agentlightning.errors import ValidationFailed
from agentlightning.rollouts.verifiers import (
    MAX_OUTPUT_CHARS,
    REGEX_TIMEOUT_S,
    VerifierResult,
    register_verifier,
    validate_spec,
    verify,
)


@register_verifier("unit_len")
def _length(output: str, options: Mapping[str, Any]) -> float:
    return len(output) / float(options.get("target", 10))


@register_verifier("unit_boom")
def _boom(output: str, options: Mapping[str, Any]) -> bool:
    raise RuntimeError("broken verifier")


@register_verifier("unit_result")
def _result(output: str, options: Mapping[str, Any]) -> VerifierResult:
    return VerifierResult(float("nan"), False, "nan score")


@pytest.mark.parametrize(
    ("spec", "output", "score"),
    [
        ({"type": "exact", "expected": "Paris"}, "  paris \n", 1.0),
        ({"type": "exact", "expected": "Paris", "case_sensitive": True}, "paris", 0.0),
        ({"type": "exact", "expected": "Paris", "strip": False}, " Paris", 0.0),
        ({"type": "numeric", "expected": 42}, "so the answer is 42.", 1.0),
        ({"type": "numeric", "expected": 1234.5}, "total: 1,234.5 dollars", 1.0),
        ({"type": "numeric", "expected": -300}, "first 7 then -3e2", 1.0),
        ({"type": "numeric", "expected": 10, "tolerance": 0.5}, "about 10.4", 1.0),
        ({"type": "numeric", "expected": 100, "tolerance": 0.01, "relative": True}, "100.9", 1.0),
        ({"type": "numeric", "expected": 100, "tolerance": 0.001, "relative": True}, "100.9", 0.0),
        ({"type": "numeric", "expected": 42}, "42 then 43", 0.0),  # the last number counts
        ({"type": "numeric", "expected": 42}, "no digits here", 0.0),
        ({"type": "contains", "expected": "blue"}, "The sky is Blue.", 1.0),
        ({"type": "contains", "expected": ["a1", "b2", "c3", "d4"]}, "a1 b2", 0.5),
        ({"type": "contains", "expected": ["x", "b2"], "all": False}, "a1 b2", 1.0),
        ({"type": "regex", "pattern": r"\d{3}-\d{4}"}, "call 555-1234", 1.0),
        ({"type": "regex", "pattern": r"\d+", "full_match": True}, "12a", 0.0),
        ({"type": "regex", "pattern": "hello", "ignore_case": True}, "HELLO", 1.0),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', 1.0),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}, 'x ```json\n{"a": 2}\n``` y', 1.0),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}, 'Result: {"b": 1} done', 0.0),
        ({"type": "json_schema", "schema": {"type": "array"}}, "no json", 0.0),
        ({"type": "python", "name": "unit_len", "options": {"target": 4}}, "ab", 0.5),
        ({"type": "python", "name": "unit_len"}, "x" * 50, 1.0),  # clamped to [0, 1]
    ],
)
def test_verifiers_score(spec: dict[str, Any], output: str, score: float) -> None:
    result = verify(spec, output)
    assert result.score == pytest.approx(score), result
    assert 0.0 <= result.score <= 1.0 and result.detail


def test_python_verifier_errors_score_zero() -> None:
    result = verify({"type": "python", "name": "unit_boom"}, "x")
    assert result.score == 0.0 and not result.passed and "RuntimeError" in result.detail
    assert verify({"type": "python", "name": "unit_result"}, "x").score == 0.0


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"type": "exact"},
        {"type": "eval", "code": "1"},
        {"type": "python", "name": "nobody_registered_this"},
        {"type": "python", "name": "unit_len", "code": "import os"},
        {"type": "python", "name": "../etc"},
        {"type": "regex", "pattern": "("},
        {"type": "regex", "pattern": "a" * 1001},
        {"type": "numeric", "expected": "forty-two"},
        {"type": "numeric", "expected": 1, "tolerance": -1},
        {"type": "contains", "expected": []},
        {"type": "contains", "expected": ""},
        {"type": "json_schema", "schema": {"type": "not-a-type"}},
        {"type": "json_schema", "schema": "string"},
        {"type": "exact", "expected": "x", "unknown": True},
        "exact",
        None,
    ],
)
def test_invalid_specs_are_refused(spec: Any) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_spec(spec)
    assert refused.value.code == "VALIDATION_ERROR"
    assert refused.value.details["errors"][0]["field"].startswith("body.context.verifier")


def test_catastrophic_regex_is_cut_off() -> None:
    started = time.perf_counter()
    result = verify({"type": "regex", "pattern": r"(a+)+$"}, "a" * 50_000 + "b")
    elapsed = time.perf_counter() - started
    assert result.score == 0.0 and "longer than" in result.detail
    assert elapsed < REGEX_TIMEOUT_S * 20  # bounded (generous for a saturated machine)


def test_huge_outputs_are_bounded() -> None:
    huge = "9" * (MAX_OUTPUT_CHARS * 20)
    for spec in (
        {"type": "numeric", "expected": 1},
        {"type": "contains", "expected": "x"},
        {"type": "exact", "expected": "x"},
        {"type": "regex", "pattern": r"(\d+)+x"},
        {"type": "json_schema", "schema": {"type": "object"}},
    ):
        started = time.perf_counter()
        assert verify(spec, huge).score == 0.0
        assert time.perf_counter() - started < 10
    nested = "[" * 100_000 + "]" * 100_000  # would overflow a recursive parser
    assert verify({"type": "json_schema", "schema": {"type": "array"}}, nested).score == 0.0
    # Only the first MAX_OUTPUT_CHARS are read: a match beyond them does not count.
    assert verify({"type": "contains", "expected": "needle"}, "x" * MAX_OUTPUT_CHARS + "needle").score == 0.0


def test_json_schema_refs_do_not_fetch() -> None:
    spec = {"type": "json_schema", "schema": {"$ref": "https://example.invalid/schema.json"}}
    validate_spec(spec)  # a valid schema; the reference cannot be resolved offline
    result = verify(spec, "{}")
    assert result.score == 0.0 and not result.passed
