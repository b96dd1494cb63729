"""The database's JSON codec reads and writes what the standard library did, faster."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest

from agentlightning.storage.types import json_text, json_value


def test_json_text_matches_the_standard_library_on_what_rows_and_events_hold() -> None:
    value = {"answer": "é ✓", "n": 3, "f": 0.5, "none": None, "list": [1, {"a": True}], 7: "int key"}
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))
    huge = {"big": 2**80}  # beyond orjson's 64 bits: the standard library writes it
    assert json.loads(json_text(huge)) == huge
    when = datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc)
    assert json.loads(json_text({"at": when}, default=lambda v: v.isoformat())) == {"at": when.isoformat()}
    with pytest.raises(TypeError):
        json_text({"obj": object()})  # what neither can encode still fails loudly


def test_json_value_reads_like_json_loads() -> None:
    assert json_value('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert json_value(b'"text"') == "text"
    assert math.isnan(json_value('{"x": NaN}')["x"])  # written by the standard library earlier
    with pytest.raises(TypeError):
        json_value(3)  # SQLite's JSON numbers: SQLAlchemy catches this and keeps the number
    with pytest.raises(ValueError):
        json_value("{not json")
