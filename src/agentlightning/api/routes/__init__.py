"""Every router the app serves; a feature adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from agentlightning.api.routes import admin, agents, auth, knowledge, rl, system, tasks, ws

ROUTERS: list[APIRouter] = [
    auth.router,
    admin.router,
    system.router,
    knowledge.router,
    rl.router,
    agents.router,
    tasks.router,
    ws.router,
]
