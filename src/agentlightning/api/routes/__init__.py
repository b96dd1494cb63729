"""Every router the app serves; a feature adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from agentlightning.api.routes import agents, auth, knowledge, system, tasks, ws

ROUTERS: list[APIRouter] = [
    agents.router,
    tasks.router,
    ws.router,
    auth.router,
    system.router,
    knowledge.router,
]
