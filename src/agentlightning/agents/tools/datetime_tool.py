"""``datetime``: the current time in a time zone, date arithmetic and differences."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentlightning.agents.tools.base import Tool, ToolContext, ToolError


def _zone(name: str | None) -> Any:
    if not name or name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown time zone {name!r}") from exc


def _parse(value: str, tz: Any) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ToolError(f"not an ISO 8601 date/time: {value!r}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=tz)


class DateTimeTool(Tool):
    """Answers 'what time is it', 'what date is 30 days after X' and 'how long between X and Y'."""

    name = "datetime"
    description = (
        "Date and time utilities. operation='now' (optional timezone), 'add' (date + days/hours/minutes), "
        "'diff' (between date and other_date), 'weekday' (day name of date). Dates are ISO 8601."
    )
    parameters = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": ["now", "add", "diff", "weekday"]},
            "timezone": {"type": "string", "description": "IANA zone such as 'Europe/Paris'; default UTC"},
            "date": {"type": "string"},
            "other_date": {"type": "string"},
            "days": {"type": "number"},
            "hours": {"type": "number"},
            "minutes": {"type": "number"},
        },
        "required": ["operation"],
        "additionalProperties": False,
    }
    permission = "read"
    timeout_s = 2.0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Carry out the requested operation."""
        tz = _zone(args.get("timezone"))
        op = args["operation"]
        if op == "now":
            now = datetime.now(tz)
            return {"now": now.isoformat(), "timezone": str(tz), "weekday": now.strftime("%A")}
        if "date" not in args:
            raise ToolError(f"operation {op!r} needs 'date'")
        dt = _parse(args["date"], tz)
        if op == "add":
            delta = timedelta(days=args.get("days", 0), hours=args.get("hours", 0), minutes=args.get("minutes", 0))
            result = dt + delta
            return {"result": result.isoformat(), "weekday": result.strftime("%A")}
        if op == "weekday":
            return {"date": dt.isoformat(), "weekday": dt.strftime("%A")}
        if "other_date" not in args:
            raise ToolError("operation 'diff' needs 'other_date'")
        other = _parse(args["other_date"], tz)
        seconds = (other - dt).total_seconds()
        return {"seconds": seconds, "days": seconds / 86400, "hours": seconds / 3600}
