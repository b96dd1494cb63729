"""Verifiers: score an agent's answer against what the task declared as correct (pure, no database).

A task declares its verifier in ``context.verifier``; the scheduler validates the spec when the
task is assigned (an invalid spec is a 422) and the worker scores the final answer when the task
completes, storing the score as a reward of source ``verifier``.  Types:

* ``exact``: ``{"type": "exact", "expected": "Paris", "case_sensitive": false, "strip": true}``
* ``numeric``: ``{"type": "numeric", "expected": 42, "tolerance": 0.01, "relative": false}``;
  the *last* number in the answer is compared (``1,234.5`` and ``-3e2`` are numbers).
* ``contains``: ``{"type": "contains", "expected": ["a", "b"], "all": true}``; the score is
  the fraction found (``all``) or 1 when any is found.
* ``regex``: ``{"type": "regex", "pattern": "^\\d+$", "full_match": false, "ignore_case": false}``,
  run by the ``regex`` module with a time limit, so a catastrophic pattern scores 0 instead of
  hanging the worker.
* ``json_schema``: ``{"type": "json_schema", "schema": {...}}``; JSON is taken from the whole
  answer, else a fenced ``json`` block, else the outermost ``{...}`` or ``[...]``.
* ``python``: ``{"type": "python", "name": "my_check"}`` runs a function registered in the
  process with :func:`register_verifier`; a request never carries code.

Every verifier reads at most :data:`MAX_OUTPUT_CHARS` of the answer.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import regex
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from agentlightning.errors import ValidationFailed
from agentlightning.validation import JsonObject, Text

__all__ = [
    "MAX_OUTPUT_CHARS",
    "REGEX_TIMEOUT_S",
    "VerifierResult",
    "VerifierSpec",
    "register_verifier",
    "registered_verifiers",
    "validate_spec",
    "verify",
]

log = logging.getLogger(__name__)

#: How much of an answer a verifier reads (longer answers are cut before any matching).
MAX_OUTPUT_CHARS = 100_000
#: Wall-clock limit of one regular-expression match.
REGEX_TIMEOUT_S = 0.25
#: The longest pattern accepted.
MAX_PATTERN_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class VerifierResult:
    """A verifier's verdict: a score in [0, 1], whether it passed, and a short explanation."""

    score: float
    passed: bool
    detail: str

    def as_details(self) -> dict[str, Any]:
        """The JSON stored in the reward's ``details``."""
        return {"passed": self.passed, "detail": self.detail[:500]}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExactSpec(_Spec):
    """The answer equals ``expected``."""

    type: Literal["exact"]
    expected: Text = Field(max_length=10_000)
    case_sensitive: bool = False
    strip: bool = True


class NumericSpec(_Spec):
    """The last number in the answer is within ``tolerance`` of ``expected``."""

    type: Literal["numeric"]
    expected: float = Field(allow_inf_nan=False)
    tolerance: float = Field(default=1e-6, ge=0, allow_inf_nan=False)
    #: Tolerance relative to ``|expected|`` instead of absolute.
    relative: bool = False


class ContainsSpec(_Spec):
    """The answer contains ``expected`` (one string or several)."""

    type: Literal["contains"]
    expected: (
        Annotated[Text, Field(min_length=1, max_length=10_000)]
        | list[Annotated[Text, Field(min_length=1, max_length=10_000)]]
    ) = Field(min_length=1, max_length=100)
    all: bool = True
    case_sensitive: bool = False


class RegexSpec(_Spec):
    """The answer matches ``pattern``."""

    type: Literal["regex"]
    pattern: Text = Field(min_length=1, max_length=MAX_PATTERN_CHARS)
    full_match: bool = False
    ignore_case: bool = False


class JsonSchemaSpec(_Spec):
    """The answer holds JSON valid against ``schema``."""

    type: Literal["json_schema"]
    schema_: JsonObject = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PythonSpec(_Spec):
    """A verifier function registered in the process by name."""

    type: Literal["python"]
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    #: Passed to the function as they are.
    options: JsonObject = Field(default_factory=dict)


VerifierSpec = Annotated[
    ExactSpec | NumericSpec | ContainsSpec | RegexSpec | JsonSchemaSpec | PythonSpec,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(VerifierSpec)

#: A registered verifier: ``fn(output, options) -> score | bool | VerifierResult``.
VerifierFn = Callable[[str, Mapping[str, Any]], "float | bool | VerifierResult"]
_REGISTRY: dict[str, VerifierFn] = {}


def register_verifier(name: str) -> Callable[[VerifierFn], VerifierFn]:
    """Decorator: make ``fn`` available to task specs as ``{"type": "python", "name": name}``."""

    def decorate(fn: VerifierFn) -> VerifierFn:
        _REGISTRY[name] = fn
        return fn

    return decorate


def registered_verifiers() -> list[str]:
    """Names of the registered python verifiers."""
    return sorted(_REGISTRY)


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        "VALIDATION_ERROR",
        f"Invalid verifier: {field}: {message}",
        details={"errors": [{"field": field, "message": message, "type": kind}]},
    )


def validate_spec(spec: Any, *, field: str = "body.context.verifier") -> Any:
    """Parse and check a verifier spec; raise ``VALIDATION_ERROR`` (422) naming what is wrong.

    Beyond the shape: a regex must compile, a JSON schema must be a valid schema, and a python
    verifier must be registered.  Returns the parsed spec model.
    """
    try:
        parsed = _ADAPTER.validate_python(spec)
    except PydanticValidationError as exc:
        errors = [
            {
                "field": ".".join([field, *(str(p) for p in err["loc"])]),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise ValidationFailed("VALIDATION_ERROR", f"Invalid verifier: {summary}", details={"errors": errors}) from None
    if isinstance(parsed, RegexSpec):
        try:
            regex.compile(parsed.pattern, _regex_flags(parsed))
        except (regex.error, OverflowError, RecursionError) as exc:
            raise _invalid(f"{field}.pattern", f"not a valid regular expression: {exc}") from None
    elif isinstance(parsed, JsonSchemaSpec):
        try:
            Draft202012Validator.check_schema(parsed.schema_)
        except (SchemaError, RecursionError) as exc:
            message = getattr(exc, "message", str(exc))
            raise _invalid(f"{field}.schema", f"not a valid JSON schema: {str(message)[:300]}") from None
    elif isinstance(parsed, PythonSpec) and parsed.name not in _REGISTRY:
        known = ", ".join(registered_verifiers()) or "none"
        raise _invalid(f"{field}.name", f"no verifier named '{parsed.name}' is registered (registered: {known})")
    return parsed


def verify(spec: Mapping[str, Any], output: str) -> VerifierResult:
    """Score ``output`` with the verifier ``spec`` (validated first: an invalid spec raises)."""
    parsed = validate_spec(spec)
    text = output[:MAX_OUTPUT_CHARS] if isinstance(output, str) else str(output)[:MAX_OUTPUT_CHARS]
    if isinstance(parsed, ExactSpec):
        return _exact(parsed, text)
    if isinstance(parsed, NumericSpec):
        return _numeric(parsed, text)
    if isinstance(parsed, ContainsSpec):
        return _contains(parsed, text)
    if isinstance(parsed, RegexSpec):
        return _regex(parsed, text)
    if isinstance(parsed, JsonSchemaSpec):
        return _json_schema(parsed, text)
    return _python(parsed, text)


def _verdict(ok: bool, detail: str) -> VerifierResult:
    return VerifierResult(1.0 if ok else 0.0, ok, detail)


def _exact(spec: ExactSpec, text: str) -> VerifierResult:
    got, want = (text.strip(), spec.expected.strip()) if spec.strip else (text, spec.expected)
    if not spec.case_sensitive:
        got, want = got.casefold(), want.casefold()
    return _verdict(got == want, "exact match" if got == want else "answer differs from the expected text")


#: A number as people write it: optional sign, digits with thousands separators, decimals, exponent.
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d{1,4})?|[-+]?\.\d+(?:[eE][-+]?\d{1,4})?")


def _last_number(text: str) -> float | None:
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 - only the last match is wanted
        pass
    if last is None:
        return None
    try:
        value = float(last.group(0).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numeric(spec: NumericSpec, text: str) -> VerifierResult:
    value = _last_number(text)
    if value is None:
        return _verdict(False, "no number in the answer")
    allowed = spec.tolerance * abs(spec.expected) if spec.relative else spec.tolerance
    ok = abs(value - spec.expected) <= allowed
    return _verdict(ok, f"found {value:g}, expected {spec.expected:g} (tolerance {allowed:g})")


def _contains(spec: ContainsSpec, text: str) -> VerifierResult:
    wanted = [spec.expected] if isinstance(spec.expected, str) else list(spec.expected)
    haystack = text if spec.case_sensitive else text.casefold()
    found = [w for w in wanted if (w if spec.case_sensitive else w.casefold()) in haystack]
    if spec.all:
        score = len(found) / len(wanted)
        return VerifierResult(score, len(found) == len(wanted), f"found {len(found)} of {len(wanted)}")
    return _verdict(bool(found), f"found {len(found)} of {len(wanted)} (any suffices)")


def _regex_flags(spec: RegexSpec) -> int:
    return int(regex.IGNORECASE) if spec.ignore_case else 0


def _regex(spec: RegexSpec, text: str) -> VerifierResult:
    compiled = regex.compile(spec.pattern, _regex_flags(spec))
    try:
        match = (compiled.fullmatch if spec.full_match else compiled.search)(text, timeout=REGEX_TIMEOUT_S)
    except TimeoutError:
        return _verdict(False, f"the pattern took longer than {REGEX_TIMEOUT_S}s on this answer")
    return _verdict(match is not None, "pattern matched" if match is not None else "pattern did not match")


_FENCED = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


def _json_candidates(text: str) -> list[str]:
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCED.finditer(text)][:5]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    return candidates


def _parse_json(text: str) -> tuple[bool, Any]:
    for candidate in _json_candidates(text):
        if not candidate:
            continue
        try:
            return True, json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    return False, None


def _json_schema(spec: JsonSchemaSpec, text: str) -> VerifierResult:
    found, value = _parse_json(text)
    if not found:
        return _verdict(False, "no JSON in the answer")
    try:
        error = next(iter(Draft202012Validator(spec.schema_).iter_errors(value)), None)
    except RecursionError:
        return _verdict(False, "the JSON is nested too deeply to check")
    except Exception as exc:  # noqa: BLE001 - an unresolvable $ref and the like: the answer cannot pass
        return _verdict(False, f"the schema could not be applied: {type(exc).__name__}")
    if error is None:
        return _verdict(True, "JSON matches the schema")
    return _verdict(False, f"JSON does not match the schema: {error.message[:300]}")


def _python(spec: PythonSpec, text: str) -> VerifierResult:
    fn = _REGISTRY[spec.name]
    try:
        outcome = fn(text, spec.options)
    except Exception as exc:  # noqa: BLE001 - a buggy verifier scores 0 and says why; it never fails the task
        log.warning("verifier %r raised: %s", spec.name, exc)
        return _verdict(False, f"verifier '{spec.name}' raised {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(outcome, VerifierResult):
        score = outcome.score if math.isfinite(outcome.score) else 0.0
        return VerifierResult(min(1.0, max(0.0, score)), outcome.passed, outcome.detail)
    if isinstance(outcome, bool):
        return _verdict(outcome, f"verifier '{spec.name}' returned {outcome}")
    try:
        score = float(outcome)
    except (TypeError, ValueError):
        return _verdict(False, f"verifier '{spec.name}' returned {type(outcome).__name__}, not a score")
    score = min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0
    return VerifierResult(score, score >= 0.5, f"verifier '{spec.name}' scored {score:g}")
