"""The Streamlit dashboard, page by page, against a live API (``AppTest``; nothing mocked).

Streamlit's script runs in a worker thread (``asyncio.to_thread``): its HTTP calls reach the API
served by uvicorn on this test's event loop.
"""

from __future__ import annotations

import asyncio

import pandas as pd
from streamlit.testing.v1 import AppTest

from agentlightning.dashboard.cli import APP_FILE
from tests.integration.dashboard.conftest import PASSWORD, Accounts, Seeded


async def _run(at: AppTest) -> AppTest:
    await asyncio.to_thread(at.run)
    assert not at.exception, [e.value for e in at.exception]
    return at


async def _logged_in(seeded: Seeded | Accounts, username: str) -> AppTest:
    at = AppTest.from_file(str(APP_FILE), default_timeout=90)
    at.session_state["api_url"] = seeded.url
    await _run(at)
    assert at.title[0].value == "Agent Lightning"
    at.text_input(key="username").input(username)
    at.text_input(key="password").input(PASSWORD)
    at.button[0].click()
    await _run(at)
    assert at.session_state["role"] in ("admin", "developer", "user")
    return at


async def _page(at: AppTest, page: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(page)
    await _run(at)
    assert not at.error, [e.value for e in at.error]
    return at


def _frames(at: AppTest) -> list[pd.DataFrame]:
    return [frame.value for frame in at.dataframe]


async def test_a_wrong_password_is_refused(accounts: Accounts) -> None:
    at = AppTest.from_file(str(APP_FILE), default_timeout=90)
    at.session_state["api_url"] = accounts.url
    await _run(at)
    at.text_input(key="username").input(accounts.admin)
    at.text_input(key="password").input("not-the-password")
    at.button[0].click()
    await _run(at)
    assert "Login failed" in at.error[0].value
    assert "token" not in at.session_state


async def test_every_page_shows_the_platforms_data(seeded: Seeded) -> None:
    at = await _logged_in(seeded, seeded.admin)

    # Agents (the first page): the seeded agent with a 100 % success rate and a reward trend.
    assert at.header[0].value == "Agents"
    agents = _frames(at)[0]
    row = agents[agents["name"] == seeded.agent_name].iloc[0]
    assert row["success rate (24 h)"] == 100.0 and row["completed (24 h)"] == 2
    assert at.get("vega_lite_chart"), "no reward trend chart"

    at = await _page(at, "Tasks")
    queue = _frames(at)[0]
    assert seeded.task_id in set(queue["id"])
    events = _frames(at)[1]
    assert {"task_created", "task_started", "task_completed"} <= set(events["event"])
    at.button(key="live_events").click()
    await _run(at)
    assert any("live event(s)" in str(m.value) for m in at.markdown)

    at = await _page(at, "Trace")
    at.number_input(key="trace_task_id").set_value(seeded.task_id)
    await _run(at)
    spans = _frames(at)[0]
    assert len(spans) >= 2 and "llm" in " ".join(map(str, spans["kind"])).lower()

    at = await _page(at, "RL experiments")
    experiments = _frames(at)[0]
    assert seeded.experiment_name in set(experiments["name"])
    at.selectbox(key="experiment").set_value(
        next(o for o in at.selectbox(key="experiment").options if seeded.experiment_name in o)
    )
    await _run(at)
    assert at.get("vega_lite_chart"), "no reward curve"
    checkpoints = _frames(at)[-1]
    assert "ckpt_2048.zip" in set(checkpoints["name"])

    at = await _page(at, "Self-improvement")
    texts = " ".join(str(e.value) for e in [*at.info, *at.markdown, *at.get("metric")])
    assert "not available" in texts or at.get("metric")

    at = await _page(at, "Knowledge")
    at.text_input(key="kb_query").input("runbook")
    await _run(at)
    assert any(seeded.knowledge_title in str(m.value) for m in at.markdown)

    at = await _page(at, "System health")
    assert at.metric[0].value == "ready"
    components = _frames(at)[0]
    assert "database" in set(components["component"])

    at = await _page(at, "Users")
    users = _frames(at)[0]
    assert {seeded.admin, seeded.developer} <= set(users["username"])

    # Users (admin): change the developer's role from the form; the audit log shows it.
    at.selectbox(key="admin_user").set_value(seeded.developer)
    at.selectbox(key="admin_role").set_value("user")
    next(b for b in at.button if b.label == "Apply").click()
    await _run(at)
    assert any(f"Updated {seeded.developer}" in s.value for s in at.success)
    at = await _page(at, "Users")
    users = _frames(at)[0]
    assert users[users["username"] == seeded.developer].iloc[0]["role"] == "user"
    assert "user.role_changed" in set(_frames(at)[-1]["action"])


async def test_a_developer_sees_no_user_administration(accounts: Accounts) -> None:
    at = await _logged_in(accounts, accounts.developer)
    at = await _page(at, "Users")
    assert "Only admins" in at.warning[0].value
    assert not at.dataframe
    at = await _page(at, "Self-improvement")
    at = await _page(at, "System health")
    assert at.metric[0].value == "ready"
