"""Reusable input types: what any value from a caller must satisfy before it reaches the database.

The request models (agents, tasks, knowledge, RL, system config, auth) build on these so that bad
input is a 422 (or a 413 for oversized JSON) instead of a database error:

- :data:`Text`: a ``str`` without NUL characters (PostgreSQL ``text`` and ``jsonb`` reject
  ``\\u0000``; SQLite truncates at it in places).
- :data:`DbId`: a row id: ``1 .. 2**31-1`` (ids are ``INTEGER``/``SERIAL``; asyncpg refuses a
  larger parameter and SQLite overflows at ``2**63``). :data:`DbInt` is the same range from 0, for
  offsets, counts and cursors.
- :data:`JsonObject`: a free-form JSON object (task ``context``, agent ``config``, knowledge
  ``metadata``, RL ``env_kwargs``/``hyperparameters``) bounded in encoded size and nesting depth,
  with no NUL in keys or strings and no non-finite numbers (``NaN`` is not JSON and ``jsonb``
  refuses it). The bounds are settings (:func:`configure_limits`, called by the app factory).

Nothing here knows HTTP; the API maps the error types to status codes (``json_too_large`` is 413).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

__all__ = [
    "DB_INT_MAX",
    "DbId",
    "DbInt",
    "JSON_TOO_DEEP",
    "JSON_TOO_LARGE",
    "JsonLimits",
    "JsonObject",
    "Text",
    "check_json",
    "configure_limits",
    "current_limits",
    "no_nul",
    "parse_db_id",
]

#: Largest value of a PostgreSQL ``INTEGER`` (and so of every id the platform hands out).
DB_INT_MAX = 2**31 - 1
#: Error types of oversized / overly nested JSON (the API answers 413 / 422 for them).
JSON_TOO_LARGE = "json_too_large"
JSON_TOO_DEEP = "json_too_deep"


def no_nul(value: str) -> str:
    """Reject strings the database cannot store: a NUL character, or a lone UTF-16 surrogate
    (JSON's ``"\\ud800"`` decodes to one, and it has no UTF-8 encoding)."""
    _check_text(value)
    return value


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "must not contain NUL (\\u0000) characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError("string_unicode", "must be valid Unicode (no lone surrogates)") from None


#: A string a caller sent: anything but NUL. Combine with ``Field(max_length=...)``.
Text = Annotated[str, AfterValidator(no_nul)]
#: A row id (``INTEGER``): 1 .. 2**31-1.
DbId = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
#: A non-negative ``INTEGER`` (offsets, cursors, counts): 0 .. 2**31-1.
DbInt = Annotated[int, Field(ge=0, le=DB_INT_MAX)]


def parse_db_id(ref: str | int) -> int | None:
    """``ref`` as a row id when it is one (digits within ``INTEGER``), else ``None`` (a name).

    A string of digits too large for an id cannot name a row: callers treat it as not found
    rather than sending an out-of-range parameter to the database.
    """
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref if 1 <= ref <= DB_INT_MAX else 0
    if ref.isascii() and ref.isdigit():
        number = int(ref) if len(ref) <= 12 else DB_INT_MAX + 1
        return number if 1 <= number <= DB_INT_MAX else 0
    return None


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on one free-form JSON value: encoded size in bytes and nesting depth."""

    max_bytes: int = 65_536
    max_depth: int = 16


_limits = JsonLimits()


def configure_limits(limits: JsonLimits) -> None:
    """Set the bounds :data:`JsonObject` enforces (the app factory passes the settings' values)."""
    global _limits
    _limits = limits


def current_limits() -> JsonLimits:
    """The bounds in force."""
    return _limits


def check_json(value: Any, limits: JsonLimits | None = None) -> Any:
    """Check a decoded JSON value against ``limits``; return it unchanged or raise a pydantic error.

    Walks iteratively (a deeply nested value cannot exhaust the stack), stopping at the first
    violation: depth beyond the limit, a NUL in a key or string, a non-finite number.
    """
    limits = limits or _limits
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limits.max_depth:
                raise PydanticCustomError(
                    JSON_TOO_DEEP, "JSON nested deeper than {max_depth} levels", {"max_depth": limits.max_depth}
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise PydanticCustomError("json_key", "object keys must be strings")
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise PydanticCustomError("finite_number", "numbers must be finite (NaN and Infinity are not JSON)")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > limits.max_bytes:
        raise PydanticCustomError(
            JSON_TOO_LARGE,
            "JSON value is {size} bytes; at most {max_bytes} are accepted",
            {"size": size, "max_bytes": limits.max_bytes},
        )
    return value


def _check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    return check_json(value)


#: A free-form JSON object, bounded in size and depth (see :func:`configure_limits`).
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json_object)]
