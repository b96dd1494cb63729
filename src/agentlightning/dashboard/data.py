"""Tables the dashboard derives from API answers (pure functions: tested without Streamlit)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd


def reward_trend(tasks: list[dict[str, Any]], window: int = 10) -> pd.DataFrame:
    """Each agent's reward over time: the rolling mean over its last ``window`` finished tasks
    (a completed task scores 1, a failed one 0), at each task's finishing time.

    The index is the finishing time; one column per agent name (empty cells where another
    agent's task finished).
    """
    rows = [
        {
            "agent": t.get("agent_name") or f"agent {t.get('agent_id')}",
            "time": t.get("completed_at") or t.get("created_at"),
            "reward": 1.0 if t["status"] == "completed" else 0.0,
        }
        for t in tasks
        if t.get("status") in ("completed", "failed")
    ]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame = frame.sort_values("time")
    frame["reward"] = frame.groupby("agent")["reward"].transform(lambda r: r.rolling(window, min_periods=1).mean())
    return frame.pivot_table(index="time", columns="agent", values="reward", aggfunc="last").sort_index()


def task_events(tasks: list[dict[str, Any]], limit: int = 50) -> pd.DataFrame:
    """The recent lifecycle events of tasks (created, started, finished), newest first."""
    events: list[dict[str, Any]] = []
    for t in tasks:
        for event, stamp in (
            ("task_created", t.get("created_at")),
            ("task_started", t.get("started_at")),
            (
                f"task_{t['status']}" if t.get("status") in ("completed", "failed", "cancelled") else "",
                t.get("completed_at"),
            ),
        ):
            if event and stamp:
                events.append({"time": stamp, "event": event, "task_id": t["id"], "agent": t.get("agent_name")})
    events.sort(key=lambda e: str(e["time"]), reverse=True)
    return pd.DataFrame(events[:limit])


def snippet_markdown(snippet: str) -> str:
    """A search snippet (HTML-escaped text with ``<mark>`` highlights) as Markdown with bold
    highlights; Markdown characters of the text are escaped."""
    parts = snippet.split("<mark>")
    out = []
    for i, part in enumerate(parts):
        marked, _, rest = part.partition("</mark>") if i else ("", "", part)
        if marked:
            out.append(f"**{_escape_markdown(html.unescape(marked))}**")
        out.append(_escape_markdown(html.unescape(rest)))
    return "".join(out)


def _escape_markdown(text: str) -> str:
    return "".join(f"\\{c}" if c in "\\`*_{}[]()#+-.!|<>~$" else c for c in text)
