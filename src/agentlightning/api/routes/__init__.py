"""Every router the app serves; a feature adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from agentlightning.api.routes import (
    admin,
    agents,
    auth,
    auto_rl,
    bandit,
    gateway,
    knowledge,
    rl,
    rollouts,
    system,
    tasks,
    workflows,
    ws,
)

ROUTERS: list[APIRouter] = [
    auth.router,
    admin.router,
    system.router,
    knowledge.router,
    rl.router,
    auto_rl.router,
    agents.router,
    bandit.router,
    tasks.router,
    rollouts.router,
    workflows.router,
    ws.router,
    gateway.router,
    gateway.admin_router,
]
