"""Every cache key the platform writes, with its time to live (the spec's "Redis Data Structures")."""

from __future__ import annotations

import hashlib
import json
from typing import Any

AGENT_RESPONSE_TTL = 3600
SYSTEM_CONFIG_TTL = 24 * 3600
AGENT_STATUS_TTL = 300
KNOWLEDGE_SEARCH_TTL = 30 * 60
SESSION_TTL = 24 * 3600

SYSTEM_CONFIG = "system:config"
KNOWLEDGE_SEARCH_PREFIX = "knowledge:search:"
#: Generation tokens that knowledge search keys include (a write replaces them to invalidate).
KNOWLEDGE_SEARCH_GENERATION_PREFIX = "knowledge:searchgen:"


def stable_hash(value: Any) -> str:
    """A SHA-256 over the canonical JSON of ``value``: the same input always gives the same key."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def token_hash(token: str) -> str:
    """The SHA-256 of a credential, used wherever a token must be named without being stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def agent_response(agent_id: int | str, task_hash: str) -> str:
    """Cached agent answer (1 hour)."""
    return f"agent:response:{agent_id}:{task_hash}"


def agent_status(agent_id: int | str) -> str:
    """Cached agent status (5 minutes)."""
    return f"agent:status:{agent_id}"


def knowledge_search(query_hash: str) -> str:
    """Cached knowledge search results (30 minutes)."""
    return f"{KNOWLEDGE_SEARCH_PREFIX}{query_hash}"


def knowledge_search_generation(scope: str) -> str:
    """The current generation token of a knowledge search scope (``all`` or ``category:{name}``)."""
    return f"{KNOWLEDGE_SEARCH_GENERATION_PREFIX}{scope}"


USER_PROFILE_TTL = 60


def user_profile(user_id: int | str) -> str:
    """A user's record: profile plus what authentication checks (role, active, tokens_valid_after).

    1 minute; rewritten by every change of the user, so revocation through it is immediate.
    """
    return f"user:profile:{user_id}"


KNOWN_LOGIN_ADDRESS_TTL = 30 * 24 * 3600


def known_login_address(account_digest: str, address_digest: str) -> str:
    """An address that logged in to an account successfully (30 days): exempt from the account's
    failed-login throttle, so an attacker cannot lock the owner out."""
    return f"auth:known:{account_digest}:{address_digest}"


def session(session_id: str) -> str:
    """A login session's user data (24 hours)."""
    return f"session:{session_id}"


def jwt_blacklist(token_digest: str) -> str:
    """A revoked access token (until the token would have expired)."""
    return f"jwt:blacklist:{token_digest}"
