"""Failed logins back off per account as well as per address, without locking the owner out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from agentlightning.api.app import create_app
from agentlightning.auth.service import create_user
from agentlightning.settings import Settings
from tests.helpers import unique

PASSWORD = "correct-horse-battery"


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        yield application


def _from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


async def test_guesses_spread_over_addresses_throttle_the_account_but_not_its_owner(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        login_failures_per_account="3/minute",
        login_failures_per_account_address="100/minute",
        agl_events_prefix=unique("bf"),
    )
    async with _app(settings) as app:
        name = unique("victim")
        await create_user(app.state.ctx, name, PASSWORD, "user")
        owner, attacker_a, attacker_b, stranger = (
            _from(app, "10.1.0.1"),
            _from(app, "10.9.0.1"),
            _from(app, "10.9.0.2"),
            _from(app, "10.9.0.3"),
        )
        async with owner, attacker_a, attacker_b, stranger:
            assert (await _login(owner, name, PASSWORD)).status_code == 200  # the owner's usual address
            for client in (attacker_a, attacker_b, attacker_a):
                assert (await _login(client, name, "wrong-guess-123")).status_code == 401
            # The account is throttled: a new address is refused even with the right password ...
            throttled = await _login(stranger, name, PASSWORD)
            assert throttled.status_code == 429, throttled.text
            assert throttled.json()["error"]["code"] == "RATE_LIMITED"
            assert int(throttled.headers["retry-after"]) >= 1
            guessed = await _login(attacker_b, name, "another-guess-1")
            assert guessed.status_code == 429  # ... and so is every further guess, unchecked
            # ... but the owner, from an address that logged in before, still gets in.
            assert (await _login(owner, name, PASSWORD)).status_code == 200


async def test_one_address_backs_off_for_one_account(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(
        login_failures_per_account="100/minute",
        login_failures_per_account_address="2/minute",
        agl_events_prefix=unique("bf"),
    )
    async with _app(settings) as app:
        name = unique("target")
        await create_user(app.state.ctx, name, PASSWORD, "user")
        attacker, elsewhere = _from(app, "10.8.0.1"), _from(app, "10.8.0.2")
        async with attacker, elsewhere:
            for _ in range(2):
                assert (await _login(attacker, name, "wrong-guess-123")).status_code == 401
            assert (await _login(attacker, name, PASSWORD)).status_code == 429
            assert (await _login(elsewhere, name, PASSWORD)).status_code == 200


async def test_unknown_usernames_are_throttled_alike(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(
        login_failures_per_account="2/minute",
        login_failures_per_account_address="100/minute",
        agl_events_prefix=unique("bf"),
    )
    async with _app(settings) as app:
        ghost = unique("ghost")
        a, b = _from(app, "10.7.0.1"), _from(app, "10.7.0.2")
        async with a, b:
            for _ in range(2):
                assert (await _login(a, ghost, "wrong-guess-123")).status_code == 401
            assert (await _login(b, ghost, "wrong-guess-123")).status_code == 429
