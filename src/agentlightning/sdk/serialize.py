"""Snapshot arbitrary call arguments and results as bounded JSON-ready values.

The recorder runs on another thread and later than the call, so what a span keeps must be a copy
taken at call time (agents append to their ``messages`` list between calls), made only of JSON
types, and bounded (a span never grows past the platform's JSON limits or the recorder's memory).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

#: Longest string kept in a span; longer ones end with a marker saying how much was cut.
MAX_STRING = 20_000
#: Most items kept of one list or mapping.
MAX_ITEMS = 500
#: Deepest nesting kept.
MAX_DEPTH = 12


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} characters cut]"


def to_jsonable(value: Any, *, max_string: int = MAX_STRING, _depth: int = 0) -> Any:
    """A JSON-ready deep copy of ``value``: pydantic models and dataclasses become dicts, strings
    are cut at ``max_string`` characters, containers at :data:`MAX_ITEMS` items, nesting at
    :data:`MAX_DEPTH`, and anything else becomes its ``str()``. Never raises."""
    try:
        return _convert(value, max_string, _depth)
    except Exception:  # a snapshot must never fail the caller
        return _cut(f"<unserialisable {type(value).__name__}>", max_string)


def _convert(value: Any, max_string: int, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _cut(value, max_string)
    if depth >= MAX_DEPTH:
        return _cut(repr(value), 200)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, enum.Enum):
        return _convert(value.value, max_string, depth + 1)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["..."] = f"{len(value) - MAX_ITEMS} more items cut"
                break
            out[_cut(str(key), 200)] = _convert(item, max_string, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        converted = [_convert(item, max_string, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            converted.append(f"... {len(items) - MAX_ITEMS} more items cut")
        return converted
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 models (openai, autogen, langchain messages)
        try:
            return _convert(dump(mode="json", exclude_none=True), max_string, depth + 1)
        except TypeError:
            return _convert(dump(), max_string, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert(dataclasses.asdict(value), max_string, depth + 1)
    return _cut(str(value), max_string)
