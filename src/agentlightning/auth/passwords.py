"""Password hashing with bcrypt (cost 12 by default), off the event loop."""

from __future__ import annotations

import asyncio

import bcrypt

MIN_PASSWORD_LENGTH = 8
#: bcrypt only reads the first 72 bytes; longer passwords are refused rather than truncated.
MAX_PASSWORD_BYTES = 72


def hash_password(password: str, rounds: int = 12) -> str:
    """A salted bcrypt hash of ``password``."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches ``password_hash``."""
    try:
        return bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], password_hash.encode())
    except ValueError:
        return False


async def hash_password_async(password: str, rounds: int = 12) -> str:
    """:func:`hash_password` in a worker thread (bcrypt is deliberately slow)."""
    return await asyncio.to_thread(hash_password, password, rounds)


async def verify_password_async(password: str, password_hash: str) -> bool:
    """:func:`verify_password` in a worker thread."""
    return await asyncio.to_thread(verify_password, password, password_hash)


def password_problem(password: str) -> str | None:
    """Why ``password`` is unacceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"must be at most {MAX_PASSWORD_BYTES} bytes"
    return None
