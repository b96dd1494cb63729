"""Egress rules for every outbound request made on a user's behalf (``http_request``, custom LLM upstreams).

A request may leave only when

* its scheme and port are allowed (``http``/``https`` on 80/443 unless configured otherwise),
* its host is on the allow-list (exact name, ``*.example.com`` for subdomains, ``*`` for any),
* it is not an IP literal in a non-canonical form (``2130706433``, ``0x7f.1``, ``0177.0.0.1``),
* **every** address the host resolves to is a public unicast address: loopback, private,
  link-local (cloud metadata ``169.254.169.254``), CGNAT, multicast, reserved, unspecified and
  the IPv6 forms that embed an IPv4 address (``::ffff:127.0.0.1``, 6to4, NAT64, Teredo) are
  refused unless an admin lists the network in ``allowed_networks``.

:class:`EgressTransport` applies the check to every request an ``httpx`` client sends, so each
redirect hop is checked again, and it connects to the very address it checked (the URL's host
is replaced by that address; ``Host`` and TLS SNI/certificate checks keep the name), so a DNS
answer that changes between check and connect (rebinding) cannot move the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
PortRanges = tuple[tuple[int, int], ...]
DEFAULT_PORTS: PortRanges = ((80, 80), (443, 443))


class EgressDenied(Exception):
    """An outbound request broke an egress rule; the message says which (never the target's reply)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EgressDenied(f"cannot resolve {host!r}: {exc.strerror}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64, Teredo), else itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
            return ipaddress.IPv4Address(int(ip))
    return ip


def address_allowed(address: str, allowed_networks: Iterable[IPNetwork] = ()) -> bool:
    """Whether a connection to ``address`` may be made: public unicast, or in an allowed network."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner = embedded_ipv4(ip)
    for net in allowed_networks:
        if ip in net or inner in net:
            return True
    for candidate in {ip, inner}:
        if (
            not candidate.is_global
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_private
            or candidate.is_unspecified
        ):
            return False
    return True


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """``host`` matches an entry exactly, a ``*.example.com`` entry as a subdomain, or ``*``."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().strip().rstrip(".")
        if entry == "*":
            return True
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry.strip("[]"):
            return True
    return False


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings (``10.0.0.0/8``, ``fd00::/8``) as networks; a bad entry is an error."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def parse_ports(entries: Iterable[int | str]) -> PortRanges:
    """Ports and ranges (``443``, ``"8000-8999"``) as inclusive ``(low, high)`` pairs."""
    ranges: list[tuple[int, int]] = []
    for entry in entries:
        text = str(entry).strip()
        low, _, high = text.partition("-")
        lo, hi = int(low), int(high or low)
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"bad port range {text!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: where to connect (``address``) and what to call it (``host``)."""

    scheme: str
    host: str
    port: int
    address: str


@dataclass(frozen=True)
class EgressPolicy:
    """Who may be reached. Built from settings by the tool or provider that sends the request."""

    allowed_hosts: tuple[str, ...]
    schemes: frozenset[str] = frozenset({"http", "https"})
    ports: PortRanges = DEFAULT_PORTS
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    async def check(self, url: httpx.URL | str) -> Target:
        """Check ``url`` against every rule and return the one address to connect to."""
        scheme, host, port, literal = check_static(url, self)
        addresses = [literal] if literal is not None else await self.resolver(host, port)
        if not addresses:
            raise EgressDenied(f"{host!r} has no address")
        for address in addresses:
            if not address_allowed(address, self.allowed_networks):
                raise EgressDenied(f"{host!r} resolves to a non-public address ({address})")
        return Target(scheme, host, port, addresses[0])


def check_static(url: httpx.URL | str, policy: EgressPolicy) -> tuple[str, str, int, str | None]:
    """The checks that need no DNS: scheme, port, allow-list, IP literal forms and addresses.

    Returns ``(scheme, host, port, literal address or None)``. Used when a URL is configured
    (an agent's ``base_url``) and again, with the resolution, before every connection.
    """
    try:
        url = httpx.URL(str(url)) if not isinstance(url, httpx.URL) else url
    except httpx.InvalidURL as exc:
        raise EgressDenied(f"invalid URL: {exc}") from exc
    scheme = url.scheme.lower()
    if scheme not in policy.schemes:
        raise EgressDenied(f"scheme {scheme or '(none)'!r} is not allowed")
    host = (url.host or "").lower()
    if not host:
        raise EgressDenied("the URL has no host")
    port = url.port or (443 if scheme == "https" else 80)
    if not any(lo <= port <= hi for lo, hi in policy.ports):
        raise EgressDenied(f"port {port} is not allowed")
    try:
        literal: str | None = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        literal = None
        if _NUMERIC_HOST.match(host):
            raise EgressDenied(f"{host!r} is not a canonical IP address") from None
    if not host_allowed(host, policy.allowed_hosts):
        raise EgressDenied(f"host {host!r} is not on the allow-list")
    if literal is not None and not address_allowed(literal, policy.allowed_networks):
        raise EgressDenied(f"{host!r} is a non-public address")
    return scheme, host, port, literal


class EgressTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that checks each request (each redirect hop) and pins its address."""

    def __init__(self, policy: EgressPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the destination, then send the request to the checked address."""
        target = await self.policy.check(request.url)
        extensions = dict(request.extensions)
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=target.address),
            headers=request.headers,  # carries Host: <name>
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._inner.aclose()


def egress_client(policy: EgressPolicy, **kwargs: object) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every request obeys ``policy`` (environment proxies ignored)."""
    return httpx.AsyncClient(transport=EgressTransport(policy), trust_env=False, **kwargs)  # type: ignore[arg-type]
