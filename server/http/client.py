"""The client's address as the server may believe it: the peer of the TCP connection, or, when that
peer is a configured proxy (``server.trusted_proxies``), the address the proxy chain reports in
``X-Forwarded-For``.

The chain is read from the right: each proxy appends the address it received the request from, so
the rightmost entries were written by proxies we trust and the first address (from the right) that
is not a trusted proxy is the client. Entries left of it were written by the client itself and are
ignored; a header that is not a list of IP addresses is ignored as a whole (the peer is used), and
so is every ``X-Forwarded-For`` when the peer is not a trusted proxy. With no trusted proxies (the
default) the header is never read.

The HTTP front resolves the address once per request and puts it in the ASGI scope's ``client``
(so ``request.client.host`` is the resolved address) and in ``scope["state"]["client_address"]``;
:func:`client_address` reads it back for any code that needs it (rate limits, login limits, audit).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TrustedProxies", "client_address", "resolve_client_address"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOPS = 16  # more entries than this are not a real proxy chain: the peer is used


class TrustedProxies:
    """A set of networks (``"10.0.0.0/8"``, ``"192.0.2.7"``, ``"::1"``) whose X-Forwarded-For is
    believed."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        parsed: list[_Network] = []
        for item in networks:
            try:
                parsed.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
        self.networks: tuple[_Network, ...] = tuple(parsed)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str] | None:
    """Every X-Forwarded-For entry in order (several headers are one list), or None when any
    entry is not an IP address."""
    entries: list[str] = []
    for name, value in headers:
        if name != b"x-forwarded-for":
            continue
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        for raw in text.split(","):
            entry = raw.strip()
            if entry.startswith("[") and "]" in entry:  # "[2001:db8::1]:443"
                entry = entry[1:entry.index("]")]
            elif entry.count(":") == 1:  # "192.0.2.1:443"
                entry = entry.split(":", 1)[0]
            try:
                entries.append(str(ipaddress.ip_address(entry)))
            except ValueError:
                return None
            if len(entries) > _MAX_HOPS:
                return None
    return entries


def resolve_client_address(peer: str, headers: Iterable[tuple[bytes, bytes]],
                           trusted: TrustedProxies) -> str:
    """The client's address for a connection from ``peer`` carrying ``headers`` (ASGI form:
    lower-case names, bytes)."""
    if not trusted or not trusted.trusts(peer):
        return peer
    chain = _forwarded_for(headers)
    if not chain:
        return peer
    for address in reversed(chain):
        if not trusted.trusts(address):
            return address
    return chain[0]  # every hop is one of ours: the first one is as far as we can see


def client_address(scope: Mapping[str, Any]) -> str:
    """The client address the HTTP front resolved for this request (ASGI scope or a Starlette
    ``Request``, which is a mapping of its scope); the TCP peer if none was resolved."""
    state = scope.get("state") or {}
    resolved = state.get("client_address") if isinstance(state, Mapping) else None
    if resolved:
        return str(resolved)
    client = scope.get("client")
    return str(client[0]) if client else ""
