"""Column types that map to the spec's PostgreSQL types and still work on SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, overload

import orjson
from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: ``JSONB`` on PostgreSQL, ``JSON`` (text) on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
#: ``TEXT[]`` on PostgreSQL, a JSON list on SQLite.
StringList = JSON().with_variant(ARRAY(Text()), "postgresql")


def json_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """JSON text of a value (a column, an event): orjson, several times faster than the standard
    library on the rows and events of every task, falling back to the standard library for what
    orjson refuses, such as integers beyond 64 bits. ``default`` turns other objects into JSON
    types, as for :func:`json.dumps`."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, default=default)


def json_value(text: Any) -> Any:
    """The value of JSON text, read as :func:`json.loads` would: orjson first, the standard library
    for what orjson refuses (``NaN`` written by an older version), and ``TypeError`` for what is
    not text (SQLite hands back JSON numbers as numbers; SQLAlchemy expects that error)."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(f"JSON text expected, not {type(text).__name__}")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


#: The engine's and the driver statements' JSON codec (``json_serializer`` / ``json_deserializer``).
JSON_CODEC: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": json_value}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both dialects (SQLite stores them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return as_utc(value) if isinstance(value, datetime) else value


#: Timezone-aware timestamps (``TIMESTAMP WITH TIME ZONE`` on PostgreSQL).
Timestamp = UTCDateTime()


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Treat naive datetimes (as SQLite returns them) as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
