"""The dashboard's derived tables and its command line (no server, no Streamlit runtime)."""

from __future__ import annotations

import sys

from agentlightning.dashboard.cli import APP_FILE, streamlit_command
from agentlightning.dashboard.data import reward_trend, task_events


def _task(task_id: int, agent: str, status: str, minute: int) -> dict[str, object]:
    stamp = f"2026-01-01T10:{minute:02d}:00+00:00"
    return {
        "id": task_id,
        "agent_name": agent,
        "status": status,
        "created_at": stamp,
        "started_at": stamp if status != "pending" else None,
        "completed_at": stamp if status in ("completed", "failed") else None,
    }


def test_reward_trend_is_a_rolling_mean_per_agent() -> None:
    tasks = [
        _task(1, "a", "completed", 1),
        _task(2, "a", "failed", 2),
        _task(3, "b", "completed", 3),
        _task(4, "a", "completed", 4),
        _task(5, "a", "pending", 5),
    ]
    trend = reward_trend(tasks, window=2)
    assert list(trend.columns) == ["a", "b"]
    assert trend["a"].dropna().tolist() == [1.0, 0.5, 0.5]
    assert trend["b"].dropna().tolist() == [1.0]
    assert reward_trend([_task(1, "a", "running", 1)]).empty


def test_task_events_are_newest_first() -> None:
    events = task_events([_task(1, "a", "completed", 1), _task(2, "a", "pending", 2)])
    assert events.iloc[0].to_dict()["event"] == "task_created" and events.iloc[0]["task_id"] == 2
    assert set(events["event"]) == {"task_created", "task_started", "task_completed"}


def test_the_command_runs_streamlit_on_the_app_with_the_api_url() -> None:
    command = streamlit_command("0.0.0.0", 8600, "http://api:8000", None)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_FILE)]
    assert command[command.index("--server.port") + 1] == "8600"
    assert command[command.index("--") :] == ["--", "--api-url", "http://api:8000"]
    assert APP_FILE.exists()


def test_search_snippets_become_markdown_with_bold_highlights() -> None:
    from agentlightning.dashboard.data import snippet_markdown

    assert snippet_markdown("Restart the <mark>pool</mark> when &lt;b&gt; *stalls*") == (
        "Restart the **pool** when \\<b\\> \\*stalls\\*"
    )
    assert snippet_markdown("no highlight") == "no highlight"
