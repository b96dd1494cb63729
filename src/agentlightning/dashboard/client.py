"""A small client of the platform's public HTTP API for the dashboard (httpx; nothing of the server).

Every call returns the envelope's ``data``; an error envelope becomes :class:`ApiError` carrying
the status code, the spec error code and the message, so a page can show what went wrong.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

#: Seconds a dashboard call waits for the API.
TIMEOUT_S = 15.0


class ApiError(Exception):
    """The API answered with an error envelope (or not at all)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PlatformClient:
    """Calls the platform's API as one user (bearer token after :meth:`login`)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """One API call; the envelope's ``data``, or :class:`ApiError`."""
        try:
            response = self._http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body,
                headers=self._headers(),
            )
        except httpx.HTTPError as exc:
            raise ApiError(0, "UNREACHABLE", f"{self.base_url} did not answer: {exc}") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400 or not isinstance(payload, dict):
            error = (payload or {}).get("error") if isinstance(payload, dict) else None
            error = error if isinstance(error, dict) else {}
            raise ApiError(
                response.status_code,
                str(error.get("code", "HTTP_ERROR")),
                str(error.get("message", response.text[:200])),
            )
        return payload.get("data")

    # -- auth -------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> str:
        """Log in; keeps and returns the access token."""
        data = self.request("POST", "/auth/login", body={"username": username, "password": password})
        self.token = str(data["access_token"])
        return self.token

    def profile(self) -> dict[str, Any]:
        """The caller's profile (role, permissions)."""
        return dict(self.request("GET", "/auth/profile"))

    # -- agents and tasks -------------------------------------------------------------------
    def agents_overview(self) -> dict[str, Any]:
        """Every agent with its 24 h success rate, queue and worker totals."""
        return dict(self.request("GET", "/api/v2/agents/status"))

    def tasks(
        self, *, status: str | None = None, agent: str | None = None, page_size: int = 100
    ) -> list[dict[str, Any]]:
        """The newest tasks the caller may see."""
        data = self.request("GET", "/api/v2/tasks", params={"status": status, "agent": agent, "page_size": page_size})
        return list(data["items"])

    def task(self, task_id: int) -> dict[str, Any]:
        """One task."""
        return dict(self.request("GET", f"/api/v2/tasks/{task_id}"))

    def task_trace(self, task_id: int) -> list[dict[str, Any]]:
        """A task's trace spans."""
        return list(self.request("GET", f"/api/v2/tasks/{task_id}/trace")["spans"])

    def live_events(self, last_event_id: int = 0, *, seconds: float = 1.5, limit: int = 200) -> list[dict[str, Any]]:
        """Task and training events from ``/ws/agents`` after ``last_event_id`` (stored ones first),
        read for at most ``seconds``."""
        from websockets.sync.client import connect

        url = self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "/ws/agents"
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        with connect(url, additional_headers=self._headers(), open_timeout=seconds + 5) as ws:
            ws.send(json.dumps({"action": "subscribe", "last_event_id": last_event_id}))
            while len(events) < limit and (left := deadline - time.monotonic()) > 0:
                try:
                    message = json.loads(ws.recv(timeout=left))
                except TimeoutError:
                    break
                if message.get("type") == "event":
                    events.append(message)
                elif message.get("type") == "error":
                    raise ApiError(0, str(message.get("code", "WS_ERROR")), str(message.get("message", "")))
        return events

    # -- RL ---------------------------------------------------------------------------------
    def experiments(self, limit: int = 100) -> list[dict[str, Any]]:
        """RL experiments, newest first."""
        return list(self.request("GET", "/api/v2/rl/experiments", params={"limit": limit})["items"])

    def experiment_metrics(self, experiment_id: int) -> list[dict[str, Any]]:
        """An experiment's streamed metric points (progress and evaluations)."""
        return list(self.request("GET", f"/api/v2/rl/experiments/{experiment_id}/metrics")["items"])

    def experiment_checkpoints(self, experiment_id: int) -> list[dict[str, Any]]:
        """An experiment's saved checkpoints."""
        return list(self.request("GET", f"/api/v2/rl/experiments/{experiment_id}/checkpoints"))

    def auto_status(self) -> dict[str, Any] | None:
        """Auto-RL's status, or ``None`` when this platform has no ``/api/v2/rl/auto-status``."""
        try:
            return dict(self.request("GET", "/api/v2/rl/auto-status"))
        except ApiError as exc:
            if exc.status in (404, 405):
                return None
            raise

    # -- knowledge and system ---------------------------------------------------------------
    def knowledge_search(self, q: str, *, mode: str = "fulltext", limit: int = 20) -> dict[str, Any]:
        """Search the knowledge base."""
        return dict(self.request("GET", "/api/v2/knowledge/search", params={"q": q, "mode": mode, "limit": limit}))

    def health(self) -> dict[str, Any]:
        """Readiness of the API (database and Redis)."""
        try:
            return dict(self.request("GET", "/api/v2/health", params={"ready": 1}))
        except ApiError as exc:
            if exc.status == 503:
                return {"status": "not ready", "checks": {}, "error": exc.message}
            raise

    def system_status(self) -> dict[str, Any]:
        """Components, version and host resources."""
        return dict(self.request("GET", "/api/v2/system/status"))

    def system_stats(self) -> dict[str, Any]:
        """Row counts and cache hit rate."""
        return dict(self.request("GET", "/api/v2/system/stats"))

    # -- administration ---------------------------------------------------------------------
    def users(self, page_size: int = 500) -> list[dict[str, Any]]:
        """Every user (admins only)."""
        return list(self.request("GET", "/api/v2/admin/users", params={"page_size": page_size})["items"])

    def create_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        """Create a user (admins only)."""
        body = {"username": username, "password": password, "role": role}
        return dict(self.request("POST", "/api/v2/admin/users", body=body))

    def update_user(self, user_id: int, *, role: str | None = None, is_active: bool | None = None) -> dict[str, Any]:
        """Change a user's role or enabled state (admins only)."""
        body = {k: v for k, v in {"role": role, "is_active": is_active}.items() if v is not None}
        return dict(self.request("PATCH", f"/api/v2/admin/users/{user_id}", body=body))

    def reset_password(self, user_id: int, password: str) -> dict[str, Any]:
        """Set a user's password (admins only)."""
        return dict(self.request("POST", f"/api/v2/admin/users/{user_id}/password", body={"password": password}))

    def audit(self, page_size: int = 100) -> list[dict[str, Any]]:
        """The newest audit-log entries (admins only)."""
        return list(self.request("GET", "/api/v2/admin/audit", params={"page_size": page_size})["items"])
