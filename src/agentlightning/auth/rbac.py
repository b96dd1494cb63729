"""Roles and their permissions, exactly as the spec's "Role-Based Permissions" table lists them."""

from __future__ import annotations

from collections.abc import Iterable

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "admin": ("*",),
    "developer": ("agent:*", "rl:*", "workflow:*", "knowledge:*", "system:read"),
    "user": ("agent:read", "agent:assign", "knowledge:read", "workflow:read"),
}
ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)


def permissions_for(role: str) -> list[str]:
    """The permission list a role carries (empty for an unknown role)."""
    return list(ROLE_PERMISSIONS.get(role, ()))


def grants(granted: Iterable[str], required: str) -> bool:
    """True when one of ``granted`` covers ``required`` (``*`` covers all, ``agent:*`` covers ``agent:x``)."""
    resource = required.split(":", 1)[0]
    for permission in granted:
        if permission == "*" or permission == required or permission == f"{resource}:*":
            return True
    return False
