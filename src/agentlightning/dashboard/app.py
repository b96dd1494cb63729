"""The Streamlit dashboard: run by ``agentlightning dashboard`` (``streamlit run`` of this file).

It talks to the platform only over the public HTTP API (:mod:`agentlightning.dashboard.client`),
as the user who logs in, so it shows exactly what that user may see. Script arguments (after
``--``): ``--api-url URL`` (default ``http://127.0.0.1:8000``) and ``--token-file PATH`` (an
access token or API key to start logged in, e.g. for a wall screen).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from agentlightning.dashboard.client import ApiError, PlatformClient
from agentlightning.dashboard.data import reward_trend, snippet_markdown, task_events

DEFAULT_API_URL = "http://127.0.0.1:8000"
PAGES = (
    "Agents",
    "Tasks",
    "Trace",
    "RL experiments",
    "Self-improvement",
    "Knowledge",
    "System health",
    "Users",
)
ROLES = ("admin", "developer", "user")


def script_option(name: str, default: str | None = None) -> str | None:
    """The value of ``--name VALUE`` among the script's arguments."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


def client() -> PlatformClient:
    """The API client of this browser session (its URL and token)."""
    return PlatformClient(str(st.session_state["api_url"]), st.session_state.get("token"))


def show_error(exc: ApiError) -> None:
    """Show an API error the way a user can act on."""
    if exc.status == 403:
        st.warning(f"Your role may not see this ({exc.message}).")
    else:
        st.error(f"The API answered {exc.status or 'nothing'} {exc.code}: {exc.message}")


# -- pages -----------------------------------------------------------------------------------------
def page_agents(api: PlatformClient) -> None:
    """Agents with their success rates and reward trends."""
    st.header("Agents")
    overview = api.agents_overview()
    queue = overview.get("queue", {})
    cols = st.columns(4)
    cols[0].metric("Agents", overview.get("total_agents", 0))
    cols[1].metric("Pending tasks", queue.get("pending", 0))
    cols[2].metric("Running tasks", queue.get("running", 0))
    cols[3].metric("Busy workers", overview.get("busy_workers", 0))
    agents = overview.get("agents", [])
    if not agents:
        st.info("No agents yet: create one with POST /api/v2/agents.")
        return
    table = pd.DataFrame(
        [
            {
                "id": a["id"],
                "name": a["name"],
                "type": a["type"],
                "status": a["status"],
                "success rate (24 h)": None if a.get("success_rate") is None else round(100 * a["success_rate"], 1),
                "completed (24 h)": a.get("completed_24h", 0),
                "failed (24 h)": a.get("failed_24h", 0),
                "pending": a.get("pending", 0),
                "running": a.get("running", 0),
                "avg time (ms)": a.get("avg_execution_ms"),
            }
            for a in agents
        ]
    )
    st.dataframe(table, hide_index=True)
    st.subheader("Reward trend (mean of the last 10 tasks; completed = 1, failed = 0)")
    trend = reward_trend(api.tasks(page_size=500))
    if trend.empty:
        st.info("No finished tasks yet.")
    else:
        st.line_chart(trend)


def page_tasks(api: PlatformClient) -> None:
    """The task queue and recent/live task events."""
    st.header("Task queue")
    status = st.selectbox(
        "Status", ("all", "pending", "running", "completed", "failed", "cancelled"), key="task_status"
    )
    tasks = api.tasks(status=None if status == "all" else status, page_size=200)
    if tasks:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": t["id"],
                        "agent": t.get("agent_name"),
                        "status": t["status"],
                        "priority": t["priority"],
                        "task": t["task_description"][:120],
                        "created": t.get("created_at"),
                        "time (ms)": t.get("execution_time_ms"),
                        "error": t.get("error_message"),
                    }
                    for t in tasks
                ]
            ),
            hide_index=True,
        )
    else:
        st.info("No tasks.")
    st.subheader("Recent task events")
    events = task_events(api.tasks(page_size=100))
    if events.empty:
        st.info("No task events yet.")
    else:
        st.dataframe(events, hide_index=True)
    if st.button("Read live events (2 s)", key="live_events"):
        try:
            live = api.live_events(int(st.session_state.get("last_event_id", 0)), seconds=2.0)
        except (ApiError, OSError) as exc:
            st.error(f"Live events unavailable: {exc}")
        else:
            if live:
                st.session_state["last_event_id"] = max(int(e.get("id") or 0) for e in live)
            st.write(f"{len(live)} live event(s)")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "id": e.get("id"),
                            "event": e.get("event"),
                            "time": e.get("timestamp"),
                            "data": str(e.get("data"))[:200],
                        }
                        for e in live
                    ]
                ),
                hide_index=True,
            )


def page_trace(api: PlatformClient) -> None:
    """One task's trace: agent run, LLM calls, tool calls."""
    st.header("Task trace")
    recent = api.tasks(page_size=50)
    default = int(recent[0]["id"]) if recent else 1
    task_id = int(st.number_input("Task id", min_value=1, value=default, step=1, key="trace_task_id"))
    try:
        task = api.task(task_id)
        spans = api.task_trace(task_id)
    except ApiError as exc:
        show_error(exc)
        return
    st.write(f"Task {task['id']} · {task.get('agent_name')} · **{task['status']}** · {task['task_description'][:200]}")
    if task.get("result") is not None:
        st.json(task["result"], expanded=False)
    if not spans:
        st.info("This task has no trace spans yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "kind": s["kind"],
                    "name": s["name"],
                    "status": s["status"],
                    "latency (ms)": s.get("latency_ms"),
                    "model": s.get("model"),
                    "tokens": (s.get("prompt_tokens") or 0) + (s.get("completion_tokens") or 0),
                    "span": s["span_id"],
                    "parent": s.get("parent_span_id"),
                }
                for s in spans
            ]
        ),
        hide_index=True,
    )
    for span in spans:
        with st.expander(f"{span['kind']}: {span['name']} ({span['status']})"):
            st.json(
                {"input": span.get("input"), "output": span.get("output"), "error": span.get("error")}, expanded=False
            )


def page_experiments(api: PlatformClient) -> None:
    """RL experiments with reward curves and checkpoints."""
    st.header("RL experiments")
    experiments = api.experiments()
    if not experiments:
        st.info("No RL experiments yet: start one with `agentlightning rl train` or POST /api/v2/rl/experiments.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": e["id"],
                    "name": e["name"],
                    "algorithm": e["algorithm"],
                    "status": e["status"],
                    "progress %": round(100 * float(e.get("progress") or 0), 1),
                    "timesteps": (e.get("metrics") or {}).get("timesteps"),
                    "reward": (e.get("metrics") or {}).get("ep_rew_mean"),
                }
                for e in experiments
            ]
        ),
        hide_index=True,
    )
    names = {f"{e['id']} · {e['name']}": int(e["id"]) for e in experiments}
    chosen = names[st.selectbox("Experiment", list(names), key="experiment")]
    points = api.experiment_metrics(chosen)
    curve = pd.DataFrame(
        [
            {"timesteps": p["timesteps"], "episode reward": p.get("ep_rew_mean"), "evaluation": p.get("mean_reward")}
            for p in points
        ]
    )
    st.subheader("Reward curve")
    if curve.empty or curve[["episode reward", "evaluation"]].isna().all().all():
        st.info("No reward points yet.")
    else:
        st.line_chart(curve.set_index("timesteps"))
    st.subheader("Checkpoints")
    checkpoints = api.experiment_checkpoints(chosen)
    if checkpoints:
        st.dataframe(pd.DataFrame(checkpoints), hide_index=True)
    else:
        st.info("No checkpoints yet.")


def page_auto_rl(api: PlatformClient) -> None:
    """Self-improvement (Auto-RL) status, when the platform has it."""
    st.header("Self-improvement (Auto-RL)")
    status = api.auto_status()
    if status is None:
        st.info("Auto-RL status is not available on this platform (no GET /api/v2/rl/auto-status).")
        return
    numbers = {k: v for k, v in status.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        cols = st.columns(min(len(numbers), 4))
        for i, (name, value) in enumerate(numbers.items()):
            cols[i % len(cols)].metric(name.replace("_", " "), value)
    for name, value in status.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            st.subheader(name.replace("_", " ").capitalize())
            st.dataframe(pd.DataFrame(value), hide_index=True)
    with st.expander("Raw status"):
        st.json(status)


def page_knowledge(api: PlatformClient) -> None:
    """Knowledge search."""
    st.header("Knowledge search")
    query = st.text_input("Search", key="kb_query", placeholder='words, "phrases", -exclusions')
    mode = st.radio("Mode", ("fulltext", "hybrid", "semantic"), horizontal=True, key="kb_mode")
    if not query:
        st.info("Type a query to search the knowledge base.")
        return
    try:
        result = api.knowledge_search(query, mode=str(mode))
    except ApiError as exc:
        show_error(exc)
        return
    hits = result.get("items", [])
    st.write(f"{len(hits)} result(s) for “{query}”")
    for hit in hits:
        st.markdown(f"**{hit['title']}** · score {hit['score']:.3f} · {hit.get('category') or ''}")
        st.markdown(snippet_markdown(str(hit.get("snippet", ""))))


def page_health(api: PlatformClient) -> None:
    """System health: readiness, components, resources, counts."""
    st.header("System health")
    health = api.health()
    st.metric("API", str(health.get("status", "?")))
    try:
        status = api.system_status()
        stats = api.system_stats()
    except ApiError as exc:
        show_error(exc)
        return
    resources = status.get("resources", {})
    cols = st.columns(4)
    cols[0].metric("Overall", status.get("status", "?"))
    cols[1].metric("CPU %", resources.get("cpu_percent"))
    cols[2].metric("Memory %", resources.get("memory_percent"))
    cols[3].metric("Disk %", resources.get("disk_percent"))
    st.subheader("Components")
    st.dataframe(
        pd.DataFrame(
            [
                {"component": name, "status": c.get("status"), "state": c.get("state")}
                for name, c in status.get("components", {}).items()
            ]
        ),
        hide_index=True,
    )
    st.subheader("Counts")
    st.json({"version": status.get("version"), "environment": status.get("environment"), **stats}, expanded=False)


def page_users(api: PlatformClient) -> None:
    """User administration (admins): list, create, change role, disable/enable, reset password."""
    st.header("Users")
    if st.session_state.get("role") != "admin":
        st.warning("Only admins administer users.")
        return
    users = api.users()
    st.dataframe(pd.DataFrame(users), hide_index=True)
    by_name = {u["username"]: u for u in users}
    with st.form("change_user"):
        st.subheader("Change a user")
        name = st.selectbox("User", list(by_name), key="admin_user")
        role = st.selectbox("Role", ("(unchanged)", *ROLES), key="admin_role")
        state = st.selectbox("State", ("(unchanged)", "enabled", "disabled"), key="admin_state")
        password = st.text_input("New password (optional)", type="password", key="admin_password")
        if st.form_submit_button("Apply"):
            target = by_name[str(name)]
            try:
                if role != "(unchanged)" or state != "(unchanged)":
                    api.update_user(
                        int(target["id"]),
                        role=None if role == "(unchanged)" else str(role),
                        is_active=None if state == "(unchanged)" else state == "enabled",
                    )
                if password:
                    api.reset_password(int(target["id"]), str(password))
                st.success(f"Updated {name}")
            except ApiError as exc:
                show_error(exc)
    with st.form("create_user"):
        st.subheader("Create a user")
        new_name = st.text_input("Username", key="new_username")
        new_password = st.text_input("Password", type="password", key="new_password")
        new_role = st.selectbox("Role", ROLES, index=2, key="new_role")
        if st.form_submit_button("Create"):
            try:
                api.create_user(str(new_name), str(new_password), str(new_role))
                st.success(f"Created {new_name}")
            except ApiError as exc:
                show_error(exc)
    st.subheader("Audit log")
    entries = api.audit()
    if entries:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "time": e["created_at"],
                        "actor": e["actor"],
                        "action": e["action"],
                        "target": e["target"],
                        "details": str(e.get("details") or ""),
                        "request": e.get("request_id"),
                    }
                    for e in entries
                ]
            ),
            hide_index=True,
        )
    else:
        st.info("No administrative changes yet.")


RENDERERS = {
    "Agents": page_agents,
    "Tasks": page_tasks,
    "Trace": page_trace,
    "RL experiments": page_experiments,
    "Self-improvement": page_auto_rl,
    "Knowledge": page_knowledge,
    "System health": page_health,
    "Users": page_users,
}


def login_form() -> None:
    """Ask for the API URL, a username and a password."""
    st.title("Agent Lightning")
    with st.form("login"):
        st.text_input("API URL", key="api_url")
        username = st.text_input("Username", key="username")
        password = st.text_input("Password", type="password", key="password")
        if st.form_submit_button("Log in"):
            api = client()
            try:
                api.login(str(username), str(password))
                profile = api.profile()
            except ApiError as exc:
                st.error(f"Login failed: {exc.message}")
                return
            finally:
                api.close()
            st.session_state["token"] = api.token
            st.session_state["user"] = profile["username"]
            st.session_state["role"] = profile["role"]
            st.rerun()


def start_with_token_file() -> None:
    """Log in with the token of ``--token-file`` (once per session)."""
    path = script_option("token-file")
    if not path or st.session_state.get("token") or st.session_state.get("token_file_failed"):
        return
    token = Path(path).read_text(encoding="utf-8").strip()
    api = PlatformClient(str(st.session_state["api_url"]), token)
    try:
        profile = api.profile()
    except ApiError as exc:
        st.session_state["token_file_failed"] = True
        st.error(f"The token in {path} was refused: {exc.message}")
        return
    finally:
        api.close()
    st.session_state.update(token=token, user=profile["username"], role=profile["role"])


def main() -> None:
    """Render the dashboard."""
    st.set_page_config(page_title="Agent Lightning", page_icon="⚡", layout="wide")
    st.session_state.setdefault("api_url", script_option("api-url", DEFAULT_API_URL))
    start_with_token_file()
    if not st.session_state.get("token"):
        login_form()
        return
    st.sidebar.title("⚡ Agent Lightning")
    st.sidebar.caption(
        f"{st.session_state.get('user')} ({st.session_state.get('role')}) · {st.session_state['api_url']}"
    )
    page = st.sidebar.radio("Page", PAGES, key="page")
    if st.sidebar.button("Log out", key="logout"):
        for key in ("token", "user", "role"):
            st.session_state.pop(key, None)
        st.rerun()
    api = client()
    try:
        RENDERERS[str(page)](api)
    except ApiError as exc:
        if exc.status == 401:
            st.session_state.pop("token", None)
            st.warning("Your session ended; log in again.")
        else:
            show_error(exc)
    finally:
        api.close()


if __name__ == "__main__":  # streamlit runs the script as __main__
    main()
