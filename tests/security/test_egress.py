"""Egress rules of ``http_request`` (and of agents' own LLM upstreams, which share them).

Only loopback traffic is allowed on the test machine, so every private/metadata address below is
refused by the check itself, before any connection. The "allowed" server of the redirect and
rebinding tests lives on 127.0.0.2, which an admin allow-lists explicitly; 127.0.0.1 plays the
internal service the attacker wants to reach.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agentlightning.agents.tools.base import ToolContext
from agentlightning.agents.tools.egress import EgressDenied, EgressPolicy, address_allowed, egress_client, parse_ports
from agentlightning.agents.tools.registry import default_registry
from agentlightning.settings import Settings

Login = Callable[[str], Awaitable[dict[str, str]]]


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        server: Any = self.server
        server.hits.append((self.path, self.headers.get("Host")))
        if server.redirect_to and self.path == "/start":
            self.send_response(302)
            self.send_header("Location", server.redirect_to)
            self.end_headers()
            return
        body = server.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Site:
    """A tiny HTTP server on one loopback address that records what reaches it."""

    def __init__(self, host: str, body: str, port: int = 0, redirect_to: str | None = None) -> None:
        self.server: Any = http.server.ThreadingHTTPServer((host, port), _Recorder)
        self.server.hits = []
        self.server.body = body
        self.server.redirect_to = redirect_to
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> list[tuple[str, str]]:
        return self.server.hits

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[Site]:
    """The internal service (on 127.0.0.1) an attacker wants to reach."""
    site = Site("127.0.0.1", "internal secret")
    yield site
    site.close()


@pytest.fixture
def public(internal: Site) -> Iterator[Site]:
    """An allow-listed site (127.0.0.2) that redirects ``/start`` to the internal service."""
    site = Site("127.0.0.2", "public page", redirect_to=f"{internal.url}/secret")
    yield site
    site.close()


def tool_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "http_tool_enabled": True,
        "http_tool_allowed_hosts": ["*"],
        "http_tool_allowed_ports": ["80", "443", "1024-65535"],
        "egress_allowed_networks": ["127.0.0.2/32"],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def fetch(url: str, settings: Settings | None = None, app: Any = None) -> Any:
    ctx = ToolContext(settings=settings or tool_settings(), app=app)
    return await default_registry().invoke("http_request", {"url": url}, ctx)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://[::1]:{port}/secret",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://10.255.255.254:8080/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/secret",
        "http://0x7f000001:{port}/secret",
        "http://0x7f.0.0.1:{port}/secret",
        "http://127.1:{port}/secret",
        "http://017700000001:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://[::ffff:7f00:1]:{port}/secret",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:7f00:1::1]/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
async def test_internal_and_special_addresses_are_refused(url: str, internal: Site) -> None:
    result = await fetch(url.format(port=internal.port))
    assert not result.ok
    assert "refused" in (result.error or "")
    assert internal.hits == []


def test_address_classification() -> None:
    for address in ("127.0.0.1", "::1", "169.254.169.254", "10.1.2.3", "::ffff:10.1.2.3", "fe80::1", "224.0.0.1"):
        assert not address_allowed(address), address
    assert address_allowed("127.0.0.2", parse_networks_for_test("127.0.0.2/32"))
    assert not address_allowed("127.0.0.1", parse_networks_for_test("127.0.0.2/32"))


def parse_networks_for_test(*cidrs: str) -> tuple:
    from agentlightning.agents.tools.egress import parse_networks

    return parse_networks(cidrs)


async def test_allowed_site_is_fetched(public: Site) -> None:
    result = await fetch(f"{public.url}/page")
    assert result.ok, result.error
    assert result.output["body"] == "public page"


async def test_redirect_to_an_internal_address_is_refused(public: Site, internal: Site) -> None:
    result = await fetch(f"{public.url}/start")
    assert not result.ok and "refused" in (result.error or "")
    assert [path for path, _ in public.hits] == ["/start"]
    assert internal.hits == []


async def test_host_allow_list_and_ports(public: Site) -> None:
    only_other = tool_settings(http_tool_allowed_hosts=["api.example.com", "*.example.org"])
    result = await fetch(f"{public.url}/page", only_other)
    assert not result.ok and "allow-list" in (result.error or "")
    default_ports = tool_settings(http_tool_allowed_ports=[80, 443])
    result = await fetch(f"{public.url}/page", default_ports)
    assert not result.ok and "port" in (result.error or "")
    assert public.hits == []


async def test_connection_is_pinned_to_the_checked_address(public: Site) -> None:
    """A name that the check resolved to 127.0.0.2 is connected to there, even if the system
    resolver would now answer 127.0.0.1 for it (a DNS rebinding attack)."""
    decoy = Site("127.0.0.1", "internal secret", port=public.port)
    answers: list[str] = []

    async def first_answer_then_rebind(host: str, port: int) -> list[str]:
        answers.append(host)
        return ["127.0.0.2"]

    policy = EgressPolicy(
        allowed_hosts=("localhost",),
        ports=parse_ports([public.port]),
        allowed_networks=parse_networks_for_test("127.0.0.2/32"),
        resolver=first_answer_then_rebind,
    )
    try:
        async with egress_client(policy) as client:
            response = await client.get(f"http://localhost:{public.port}/page")
    finally:
        decoy.close()
    assert response.text == "public page"
    assert public.hits == [("/page", f"localhost:{public.port}")]
    assert decoy.hits == []
    assert answers == ["localhost"]


async def test_egress_errors_are_raised_before_connecting() -> None:
    policy = EgressPolicy(allowed_hosts=("*",))
    with pytest.raises(EgressDenied):
        await policy.check("http://169.254.169.254/")
    async with egress_client(policy) as client:
        with pytest.raises(EgressDenied):
            await client.get("http://[::ffff:10.0.0.1]/")


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        http_tool_enabled=True,
        http_tool_allowed_hosts=["127.0.0.2"],
        http_tool_allowed_ports=["1024-65535"],
        egress_allowed_networks=["127.0.0.2/32"],
    )


async def test_admin_switch_turns_the_tool_off_at_once(
    client: httpx.AsyncClient, app: FastAPI, login: Login, settings: Settings, public: Site
) -> None:
    ctx = app.state.ctx
    tool_ctx = ToolContext(settings=settings, app=ctx)
    assert (await default_registry().invoke("http_request", {"url": f"{public.url}/page"}, tool_ctx)).ok
    admin = await login("admin")
    response = await client.put("/api/v2/system/config", json={"http_tool_enabled": False}, headers=admin)
    assert response.status_code == 200, response.text
    off = await default_registry().invoke("http_request", {"url": f"{public.url}/page"}, tool_ctx)
    assert not off.ok and "disabled" in (off.error or "")
    assert "http_request" not in [s.name for s in await default_registry().specs_now(tool_ctx)]
    assert len(public.hits) == 1
    try:
        # The admin's allow-list replaces the deployment's at once too.
        await client.put("/api/v2/system/config", json={"http_tool_enabled": True}, headers=admin)
        await client.put("/api/v2/system/config", json={"http_tool_allowed_hosts": ["example.org"]}, headers=admin)
        moved = await default_registry().invoke("http_request", {"url": f"{public.url}/page"}, tool_ctx)
        assert not moved.ok and "allow-list" in (moved.error or "")
        assert len(public.hits) == 1
    finally:
        reset = {"http_tool_enabled": None, "http_tool_allowed_hosts": None}
        assert (await client.put("/api/v2/system/config", json=reset, headers=admin)).status_code == 200
    back = await default_registry().invoke("http_request", {"url": f"{public.url}/page"}, tool_ctx)
    assert back.ok, back.error
