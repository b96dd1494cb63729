"""Every router the app serves; a feature adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from agentlightning.api.routes import auth, knowledge, system

ROUTERS: list[APIRouter] = [
    auth.router,
    system.router,
    knowledge.router,
]
