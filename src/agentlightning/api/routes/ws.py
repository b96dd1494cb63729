"""``/ws/agents``: live task and training events over WebSocket.

Authentication, without the token in the URL: the ``Sec-WebSocket-Protocol: bearer, <token>``
header (browsers: ``new WebSocket(url, ["bearer", token])``; the server answers with the
``bearer`` subprotocol), the ``Authorization: Bearer`` or ``X-API-Key`` header (non-browser
clients), or a first message ``{"action": "auth", "token": ...}`` sent within 10 seconds. The
``token`` query parameter still works but puts the token in URLs (it is redacted from our logs,
not from a proxy's). A connection without a valid token holding ``agent:read`` is refused.

A refused connection is accepted and then closed with code 4401 (no valid token) or 4403 (no
``agent:read``), so every client sees the code, whichever way it authenticated.

Client messages::

    {"action": "subscribe", "agent_id": "data_agent", "events": ["task_completed", "training_update"]}
    {"action": "subscribe", "agent_id": "data_agent", "last_event_id": 41}   # resume after event 41
    {"action": "unsubscribe", "subscription_id": "sub_1"}     # or the same selector, or nothing: all
    {"action": "ping"}

Server messages: ``connected``, ``subscribed``, ``unsubscribed``, ``pong``, ``error`` and
``{"type": "event", "event": ..., "data": {...}, "timestamp": ..., "subscriptions": [...]}``.
Events come from the process's event bus, which carries every API/worker process's events
(Redis pub/sub in production) and reads the stored event log for any that Redis missed.  Each
event has an ``id``; a client that reconnects passes the last id it saw (``last_event_id`` in the
subscribe message, or ``?last_event_id=`` for the first subscription) and first gets the stored
events it missed, each event at most once per connection.  A subscriber receives only the events
it may read over REST (see :func:`agentlightning.agents.subscriptions.visible`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from sqlalchemy import or_, select
from starlette.websockets import WebSocketState

from agentlightning.agents.service import AgentService
from agentlightning.agents.subscriptions import (
    Subscription,
    SubscriptionError,
    needs_labels,
    parse_last_event_id,
    parse_subscribe,
    visible,
)
from agentlightning.api.deps import PermissionCheck
from agentlightning.api.envelope import utc_timestamp
from agentlightning.auth.service import Principal, authenticate_token
from agentlightning.core.context import AppContext
from agentlightning.errors import AppError
from agentlightning.storage.faults import RETRY_AFTER_SECONDS, is_unavailable
from agentlightning.storage.models import Agent, Workflow
from agentlightning.validation import parse_db_id

log = logging.getLogger(__name__)
router = APIRouter(tags=["websocket"])

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
#: RFC 6455 "Try Again Later": the server cannot serve now (its database is unavailable).
CLOSE_TRY_AGAIN_LATER = 1013
PERMISSION = "agent:read"
#: Ids remembered per connection to send each event once (replay and live overlap).
SENT_IDS_KEPT = 50_000


class WebSocketPermission(PermissionCheck):
    """The route's permission declaration; the check itself runs in the handler because the
    token may arrive in the first message rather than the handshake."""

    def __init__(self, permission: str) -> None:
        super().__init__("permission", permission)

    async def __call__(self, websocket: WebSocket) -> str | None:  # type: ignore[override]
        """The credential offered in the handshake (subprotocol, headers or query), if any."""
        offered = bearer_subprotocol(websocket)
        if offered:
            return offered
        token = websocket.query_params.get("token")
        if token:
            return token
        scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return websocket.headers.get("x-api-key")


BEARER_SUBPROTOCOL = "bearer"


def bearer_subprotocol(websocket: WebSocket) -> str | None:
    """The token of ``Sec-WebSocket-Protocol: bearer, <token>``, if the client offered one."""
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) >= 2 and protocols[0].lower() == BEARER_SUBPROTOCOL and protocols[1]:
        return protocols[1]
    return None


async def _authenticate(ctx: AppContext, token: str) -> Principal | None:
    try:
        return await authenticate_token(ctx, token)
    except AppError:
        return None


async def _known_selector(ctx: AppContext, selector: str) -> bool:
    if len(selector) > 255 or "\x00" in selector:
        return False  # no agent has such a name (and the database cannot compare it)
    conditions = [Agent.name == selector, Agent.type == selector]
    number = parse_db_id(selector)
    if number:
        conditions.append(Agent.id == number)
    workflow = [Workflow.name == selector] + ([Workflow.id == number] if number else [])
    async with ctx.db.session() as s:
        if (await s.scalar(select(Agent.id).where(or_(*conditions)).limit(1))) is not None:
            return True
        return (await s.scalar(select(Workflow.id).where(or_(*workflow)).limit(1))) is not None


async def _available_agents(ctx: AppContext) -> list[str]:
    async with ctx.db.session() as s:
        return [r[0] for r in await s.execute(select(Agent.name).order_by(Agent.id).limit(50))]


class _Connection:
    """One client: its subscriptions, the two pumps (client messages, bus events) and the watch
    that ends it when its token is revoked."""

    def __init__(self, ctx: AppContext, websocket: WebSocket, principal: Principal) -> None:
        self.ctx = ctx
        self.ws = websocket
        self.principal = principal
        self.subscriptions: dict[str, Subscription] = {}
        self.send_lock = asyncio.Lock()
        self.sent_ids: set[int] = set()
        self.labels: dict[int, tuple[str | None, str | None]] = {}
        #: ``?last_event_id=``: the resume cursor of the first subscription.
        self.resume_from: int | None = None

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message, default=str))

    async def error(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        await self.send({"type": "error", "error": {"code": code, "message": message, "details": details or {}}})

    async def handle(self, message: dict[str, Any]) -> None:
        action = message.get("action")
        if action == "subscribe":
            try:
                selector, events = parse_subscribe(message)
                since = parse_last_event_id(message.get("last_event_id"))
            except SubscriptionError as exc:
                await self.error(exc.code, str(exc), exc.details)
                return
            if selector is not None and not await _known_selector(self.ctx, selector):
                await self.error(
                    "AGENT_NOT_FOUND",
                    f"Agent with ID '{selector}' not found",
                    {"agent_id": selector, "available_agents": await _available_agents(self.ctx)},
                )
                return
            sub = Subscription(selector, events)
            self.subscriptions[sub.id] = sub
            if since is None:
                since, self.resume_from = self.resume_from, None
            await self.send({"type": "subscribed", **sub.describe(), "last_event_id": since})
            if since is not None:
                await self.replay(since, sub)
        elif action == "unsubscribe":
            removed = self._unsubscribe(message)
            await self.send({"type": "unsubscribed", "subscription_ids": removed})
        elif action == "ping":
            await self.send({"type": "pong", "timestamp": utc_timestamp()})
        elif action == "auth":
            await self.send({"type": "authenticated", "user": self.principal.username})
        else:
            await self.error(
                "VALIDATION_ERROR", f"Unknown action {action!r}", {"actions": ["subscribe", "unsubscribe", "ping"]}
            )

    def _unsubscribe(self, message: dict[str, Any]) -> list[str]:
        sub_id = message.get("subscription_id")
        if sub_id:
            return [sub_id] if self.subscriptions.pop(str(sub_id), None) else []
        selector = next((message[k] for k in ("agent_id", "agent", "agent_name", "agent_type") if message.get(k)), None)
        removed = [sid for sid, sub in self.subscriptions.items() if selector is None or sub.selector == str(selector)]
        for sid in removed:
            del self.subscriptions[sid]
        return removed

    async def pump_client(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            try:
                message = json.loads(raw)
            except ValueError:
                await self.error("VALIDATION_ERROR", "Messages must be JSON objects")
                continue
            if not isinstance(message, dict):
                await self.error("VALIDATION_ERROR", "Messages must be JSON objects")
                continue
            await self.handle(message)

    async def replay(self, since: int, sub: Subscription) -> None:
        """Send the stored events after ``since`` that ``sub`` wants (a client catching up)."""
        cursor = since
        while True:
            batch = await self.ctx.events.read_since(cursor)
            for event in batch:
                cursor = max(cursor, int(event["id"]))
                await self.deliver(event, {sub.id: sub})
            if not batch:
                return

    async def _labels(self, event: dict[str, Any]) -> tuple[str | None, str | None] | None:
        """The agent name and type of an event that names its agent only by id."""
        if not needs_labels(event):
            return None
        agent_id = int(event["data"]["agent_id"])
        if agent_id not in self.labels:
            try:
                agent = await AgentService(self.ctx).get(agent_id)
                self.labels[agent_id] = (agent.name, agent.type)
            except AppError:
                self.labels[agent_id] = (None, None)
        return self.labels[agent_id]

    async def deliver(self, event: dict[str, Any], subscriptions: dict[str, Subscription] | None = None) -> None:
        """Send ``event`` if a subscription wants it, the principal may see it and it was not sent yet."""
        subs = self.subscriptions if subscriptions is None else subscriptions
        event_id = event.get("id")
        if not subs or (event_id is not None and event_id in self.sent_ids):
            return
        if not visible(event, self.principal.username, self.principal.can):
            return
        by_label = any(sub.selector is not None and not sub.selector.isdigit() for sub in subs.values())
        labels = await self._labels(event) if by_label else None
        matched = [sid for sid, sub in subs.items() if sub.matches(event, labels)]
        if not matched or (event_id is not None and event_id in self.sent_ids):  # re-checked: we awaited
            return
        if event_id is not None:
            if len(self.sent_ids) >= SENT_IDS_KEPT:
                self.sent_ids = set(sorted(self.sent_ids)[SENT_IDS_KEPT // 2 :])
            self.sent_ids.add(int(event_id))
        await self.send(
            {
                "type": "event",
                "id": event_id,
                "event": event.get("event"),
                "topic": event.get("topic"),
                "data": event.get("data"),
                "timestamp": event.get("timestamp"),
                "subscriptions": matched,
            }
        )

    async def watch_credential(self, credential: str, interval: float) -> None:
        """Close the connection once its token stops being valid (logout, a role or password
        change, a disabled account), and apply a changed role's visibility at once."""
        while True:
            await asyncio.sleep(interval)
            principal = await _authenticate(self.ctx, credential)
            if principal is None or not principal.can(PERMISSION):
                code = CLOSE_UNAUTHORIZED if principal is None else CLOSE_FORBIDDEN
                await self.ws.close(code=code, reason="token revoked, expired or no longer permitted")
                return
            self.principal = principal

    async def pump_events(self, bus: Any) -> None:
        async for event in bus:
            await self.deliver(event)


@router.websocket("/ws/agents")
async def agents_socket(websocket: WebSocket, token: str | None = Depends(WebSocketPermission(PERMISSION))) -> None:
    """Stream agent events to an authenticated subscriber."""
    try:
        await _serve(websocket, token)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The database went away (a restart, a failover): tell the client to come back, cleanly.
        log.warning("websocket closed: database unavailable: %s: %s", type(exc).__name__, exc)
        with contextlib.suppress(Exception):
            if websocket.client_state == WebSocketState.CONNECTING:
                await websocket.accept()  # so the client sees the close code, not a refused handshake
            if websocket.client_state == WebSocketState.CONNECTED:
                await websocket.send_text(
                    json.dumps(
                        {
                            "type": "error",
                            "error": {
                                "code": "DATABASE_UNAVAILABLE",
                                "message": "The database is unavailable; reconnect shortly",
                                "details": {"retry_after": RETRY_AFTER_SECONDS},
                            },
                        }
                    )
                )
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="DATABASE_UNAVAILABLE")


async def _serve(websocket: WebSocket, token: str | None) -> None:
    ctx: AppContext = websocket.app.state.ctx
    principal: Principal | None = None
    try:
        resume_from = parse_last_event_id(websocket.query_params.get("last_event_id"))
    except SubscriptionError:
        resume_from = None
    # Accept first: a close before the handshake completes reaches the client as a bare HTTP 403,
    # without the 4401/4403 code that tells it why. A client that offered the bearer subprotocol
    # gets it back, as the WebSocket handshake requires.
    await websocket.accept(subprotocol=BEARER_SUBPROTOCOL if bearer_subprotocol(websocket) else None)
    if token:
        principal = await _authenticate(ctx, token)
        if principal is None:
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="invalid or expired token")
            return
        if not principal.can(PERMISSION):
            await websocket.close(code=CLOSE_FORBIDDEN, reason=f"permission '{PERMISSION}' required")
            return
    if principal is None:
        try:
            first = json.loads(await asyncio.wait_for(websocket.receive_text(), timeout=AUTH_TIMEOUT_S))
        except (asyncio.TimeoutError, ValueError, WebSocketDisconnect):
            first = {}
        offered = first.get("token") if isinstance(first, dict) and first.get("action") == "auth" else None
        principal = await _authenticate(ctx, str(offered)) if offered else None
        token = str(offered) if offered else None
        if principal is None or not principal.can(PERMISSION):
            code = CLOSE_UNAUTHORIZED if principal is None else CLOSE_FORBIDDEN
            with contextlib.suppress(Exception):
                await websocket.send_text(
                    json.dumps(
                        {
                            "type": "error",
                            "error": {
                                "code": "UNAUTHORIZED" if principal is None else "FORBIDDEN",
                                "message": "Authenticate with a valid token holding agent:read",
                            },
                        }
                    )
                )
                await websocket.close(code=code)
            return
    conn = _Connection(ctx, websocket, principal)
    conn.resume_from = resume_from
    # Listen to the bus before telling the client it is connected, so no event is missed.
    async with ctx.events.subscribe(durable=True) as bus:
        await conn.send({"type": "connected", "user": principal.username, "timestamp": utc_timestamp()})
        tasks = [asyncio.create_task(conn.pump_client()), asyncio.create_task(conn.pump_events(bus))]
        if token:
            tasks.append(asyncio.create_task(conn.watch_credential(token, ctx.settings.ws_reauth_seconds)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = t.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect):
                    raise exc
        except WebSocketDisconnect:
            pass
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
