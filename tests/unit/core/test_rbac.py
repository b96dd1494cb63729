"""The role table is exactly the spec's, and wildcards match as the spec implies."""

import pytest

from agentlightning.auth.rbac import ROLE_PERMISSIONS, grants, permissions_for


def test_roles_match_spec_exactly() -> None:
    assert ROLE_PERMISSIONS == {
        "admin": ("*",),
        "developer": ("agent:*", "rl:*", "workflow:*", "knowledge:*", "system:read"),
        "user": ("agent:read", "agent:assign", "knowledge:read", "workflow:read"),
    }


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        ("admin", "system:write", True),
        ("admin", "anything:at-all", True),
        ("developer", "agent:write", True),
        ("developer", "rl:execute", True),
        ("developer", "system:read", True),
        ("developer", "system:write", False),
        ("user", "agent:read", True),
        ("user", "agent:assign", True),
        ("user", "agent:write", False),
        ("user", "rl:read", False),
        ("user", "knowledge:write", False),
        ("user", "system:read", False),
        ("nobody", "agent:read", False),
    ],
)
def test_grants(role: str, permission: str, allowed: bool) -> None:
    assert grants(permissions_for(role), permission) is allowed


def test_wildcard_does_not_cross_resources() -> None:
    assert not grants(["agent:*"], "agents:read")
    assert not grants(["agent:read"], "agent:readx")
