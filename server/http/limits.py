"""Per-route limits of the HTTP front, applied before a route's code runs.

Every route belongs to a class (:data:`ROUTE_CLASSES`, chosen from its path template when the
application is assembled); each class has a body limit and, for the endpoints anyone may call
without credentials, a request rate per client address:

- **Rate** (token bucket per class and client address; IPv6 clients by their /64): over it the
  answer is **429** with ``Retry-After`` (whole seconds) before anything is read. The buckets live
  in the memory of each server process (a deployment of N processes allows N times the rate),
  at most ``max_clients`` of them per class, the least recently seen forgotten first. The client
  address is the one :mod:`server.http.client` resolved (trusted proxies only).
- **Body**: a ``Content-Length`` over the limit is answered **413** before any of the body is read;
  a body without a length (chunked) is counted while the route reads it, and answered 413 the
  moment it passes the limit. uvicorn holds at most 64 KiB of unread body per connection, so a
  request never costs more memory than its route's limit plus that.
- **Query strings**: at most :data:`MAX_QUERY_PARAMETERS` parameters of bounded length on every
  route, and for the routes in :data:`QUERY_RULES` each parameter's whole value matches its
  pattern; otherwise **400** naming the parameter.
- **Slow bodies**: a body that stalls for ``body_timeout`` seconds between two pieces is answered
  **408**.

After a 413 or 408 the connection is closed, so the rest of the body is never read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.client import client_address

__all__ = ["QUERY_RULES", "ROUTE_CLASSES", "LimitedRoute", "RateLimiter", "RouteLimits", "route_class"]


@dataclass(frozen=True, slots=True)
class RouteLimits:
    body_bytes: int
    # Requests per second per client address (0: no rate limit) and the burst allowed above it.
    rate_per_second: float = 0.0
    burst: int = 0


# Route class -> (patterns on the route's path template, in order). The first match wins;
# routes that match none are "default". server/http/limits.py is the one place to classify a
# new route; tests list every route that fell through to "default".
ROUTE_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in [
        ("callback", r"^/payments/(platform/callback|gateway/ipn|bank/notification)$"),
        ("receipt_lookup", r"^/payments/(receipts/|\{payment_id\}/qr\.png$)"),
        ("ocsp", r"^/pki/ocsp(/|$)"),
        ("tsa", r"^/pki/tsa$"),
        ("pki_public", r"^/pki/(crl|certs)/"),
        ("login", r"/(login|consent|logout|authorize|account)(/|$)"),
        ("protocol", r"/(par|token|introspect|revoke|bc-authorize|userinfo)$"),
        ("app", r"/app/v1/"),
        ("public", r"(^/\.well-known/|/\.well-known/|/jwks$|/static/)"),
        ("operations", r"^/(healthz|readyz|metrics)$"),
    ])


# Query parameters of routes that read them: route path template -> parameter -> the pattern
# its whole value must match. A value that does not match (or a parameter repeated) is answered
# 400 naming the parameter before the route runs; parameters not listed are left to the route.
# Every query string is also bounded: at most MAX_QUERY_PARAMETERS parameters of at most
# MAX_QUERY_VALUE characters each.
QUERY_RULES: dict[str, dict[str, re.Pattern[str]]] = {
    # The receipt lookup behind the receipts' QR codes (payments/receipts/pdf.py).
    "/payments/receipts/verify": {
        "k": re.compile(r"[0-9A-Za-z]{1,10}"),  # template
        "s": re.compile(r"[0-9A-Za-z]{1,8}"),  # series
        "n": re.compile(r"[0-9]{1,8}"),  # number (7 digits on the receipts)
        "h": re.compile(r"[0-9a-f]{64}"),  # SHA-256 of the signed XML
        "d": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
        "t": re.compile(r"[0-9]{1,15}"),
        "mst": re.compile(r"[0-9-]{10,14}"),
    },
}
MAX_QUERY_PARAMETERS = 32
MAX_QUERY_VALUE = 2048


def query_violation(query_string: bytes, rules: Mapping[str, re.Pattern[str]]) -> str | None:
    """The first parameter of ``query_string`` that breaks ``rules`` or the global bounds, as
    ``"name: why"``; None when the query is acceptable."""
    if not query_string:
        return None
    try:
        pairs = urllib.parse.parse_qsl(query_string.decode("latin-1"), keep_blank_values=True,
                                       max_num_fields=MAX_QUERY_PARAMETERS, errors="strict")
    except ValueError:
        return f"query: at most {MAX_QUERY_PARAMETERS} parameters"
    except UnicodeDecodeError:
        return "query: not UTF-8"
    seen: set[str] = set()
    for name, value in pairs:
        if len(value) > MAX_QUERY_VALUE or len(name) > 64:
            return f"{name[:64]}: at most {MAX_QUERY_VALUE} characters"
        pattern = rules.get(name)
        if pattern is None:
            continue
        if name in seen:
            return f"{name}: given twice"
        seen.add(name)
        if value and not pattern.fullmatch(value):
            return f"{name}: does not match {pattern.pattern}"
    return None


def route_class(path: str) -> str:
    """The class of a route from its path template (``/payments/receipts/{receipt_id}.pdf``) or,
    under a mount, from the request path."""
    for name, pattern in ROUTE_CLASSES:
        if pattern.search(path):
            return name
    return "default"


class RateLimiter:
    """Token buckets keyed by client address, for one route class."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @staticmethod
    def key(address: str) -> str:
        if ":" in address:  # one IPv6 host holds a whole /64
            try:
                return str(ipaddress.ip_network(address + "/64", strict=False))
            except ValueError:
                return address
        return address

    def take(self, address: str) -> float:
        """0.0 when the request may go ahead; else the seconds until it could."""
        now = self.clock()
        key = self.key(address)
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


async def _refuse(send: Send, status: int, text: bytes,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()), (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": text})


class LimitedRoute:
    """Wraps a route's ASGI app with its class's limits. ``classify`` picks the class per request
    (a mount serving several classes); otherwise ``name`` is fixed."""

    def __init__(self, app: ASGIApp, name: str, limits: Mapping[str, RouteLimits],
                 limiters: Mapping[str, RateLimiter], *, body_timeout: float,
                 metrics_rejected: Callable[[str, str], None] | None = None,
                 classify: Callable[[str], str] | None = None,
                 query: Mapping[str, re.Pattern[str]] | None = None) -> None:
        self.query = query or {}
        self.app = app
        self.name = name
        self.limits = limits
        self.limiters = limiters
        self.body_timeout = body_timeout
        self.rejected = metrics_rejected or (lambda _cls, _why: None)
        self.classify = classify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = self.classify(scope["path"]) if self.classify is not None else self.name
        limits = self.limits.get(name) or self.limits["default"]
        limiter = self.limiters.get(name)
        if limiter is not None:
            wait = limiter.take(client_address(scope))
            if wait > 0:
                self.rejected(name, "rate")
                await _refuse(send, 429, b"too many requests\n",
                              ((b"retry-after", str(max(1, math.ceil(wait))).encode()),))
                return
        violation = query_violation(scope.get("query_string", b""), self.query)
        if violation is not None:
            self.rejected(name, "query")
            await _refuse(send, 400, f"invalid query parameter {violation}\n".encode())
            return
        limit = limits.body_bytes
        for header, value in scope["headers"]:
            if header == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    self.rejected(name, "body")
                    await _refuse(send, 413 if declared > limit else 400,
                                  b"request body too large\n" if declared > limit
                                  else b"bad content-length\n")
                    return
        received = 0
        started = answered = False  # after a refusal, whatever the route sends is dropped

        async def refuse(status: int, text: bytes, why: str) -> Message:
            nonlocal answered
            answered = True
            self.rejected(name, why)
            if not started:
                await _refuse(send, status, text)
            return {"type": "http.disconnect"}

        async def limited_receive() -> Message:
            nonlocal received
            if answered:
                return {"type": "http.disconnect"}
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                return await refuse(408, b"request body too slow\n", "slow")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return await refuse(413, b"request body too large\n", "body")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not answered:
                started = True
                await send(message)

        await self.app(scope, limited_receive, guarded_send)
