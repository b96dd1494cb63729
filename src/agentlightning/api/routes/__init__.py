"""Every router the app serves; a feature adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from agentlightning.api.routes import agents, auth, auto_rl, bandit, knowledge, rl, rollouts, system, tasks, ws

ROUTERS: list[APIRouter] = [
    auth.router,
    system.router,
    knowledge.router,
    rl.router,
    auto_rl.router,
    agents.router,
    bandit.router,
    tasks.router,
    rollouts.router,
    ws.router,
]
