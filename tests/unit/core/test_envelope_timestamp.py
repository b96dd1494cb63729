"""The envelope's timestamp: ISO 8601 UTC with milliseconds and ``Z``, the same text as datetime's."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from agentlightning.api.envelope import format_utc, utc_timestamp


def _reference(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_same_text_as_datetime() -> None:
    rng = random.Random(7)
    # Whole milliseconds plus a little (away from float rounding at a millisecond's edge).
    times = [rng.randrange(0, 4_102_444_800_000) / 1000 + 0.0004 for _ in range(2000)]
    times += [1_700_000_000.0004, 1_700_000_000.9994, 1_700_000_001.0004, 0.0004, 951_782_400.5004]  # leap day
    for now in times:
        assert format_utc(now) == _reference(now)
    # Going back to an earlier second (the cache holds one second) still formats it right.
    assert format_utc(times[0]) == _reference(times[0])


def test_now() -> None:
    text = utc_timestamp()
    assert text.endswith("Z") and len(text) == len("2025-01-27T10:30:00.000Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 60
