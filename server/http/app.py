"""Assembly of the ASGI application served next to gRPC."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import HttpLimits
from server.http.client import TrustedProxies, resolve_client_address
from server.http.limits import QUERY_RULES, LimitedRoute, RateLimiter, RouteLimits, route_class
from server.metrics import Metrics
from server.telemetry import Telemetry

__all__ = ["DirectRoute", "build_admin_app", "build_http_app", "route_classes"]

Ready = Callable[[], Awaitable[bool]]
_ERROR = PlainTextResponse("Internal Server Error", status_code=500)


class DirectRoute(Route):
    """A route at a fixed path (no parameters) that is dispatched before the Starlette stack
    (router, exception middleware) for its methods, saving that work on hot endpoints. It gets
    what every request gets: the request id, the metrics, and for an unexpected error a 500
    without details while the error goes to the log. Its endpoint must not rely on
    ``request.app`` or the router (``url_for``)."""


def _direct_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Route]:
    """(path, method) -> the direct route that Starlette's router would choose (the first route
    that matches fully), for the direct routes that no earlier route shadows."""
    table: dict[tuple[str, str], Route] = {}
    for index, route in enumerate(routes):
        if not isinstance(route, DirectRoute) or route.param_convertors or not route.methods:
            continue
        for method in route.methods:
            probe: Scope = {"type": "http", "path": route.path, "root_path": "",
                            "method": method, "headers": []}
            shadowed = False
            for earlier in routes[:index]:
                try:
                    shadowed = earlier.matches(probe)[0] is Match.FULL
                except Exception:  # a route that needs more of the request: assume it might
                    shadowed = True
                if shadowed:
                    break
            if not shadowed:
                table.setdefault((route.path, method), route)
    return table


class _ObservabilityMiddleware:
    """Request id (``X-Request-Id`` in and out), the client's address (``scope["client"]``,
    resolved through trusted proxies only) and request metrics, as pure ASGI (no buffering)."""

    def __init__(self, app: ASGIApp, metrics: Metrics,
                 direct: dict[tuple[str, str], Route] | None = None,
                 trusted: TrustedProxies | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self.telemetry = telemetry
        self.app = app
        self.metrics = metrics
        self.direct = direct or {}
        self.trusted = trusted or TrustedProxies()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        request_id = uuid.uuid4().hex
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and 8 <= len(value) <= 64 and value.isascii():
                request_id = value.decode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        client = scope.get("client")
        if client:
            address = resolve_client_address(client[0], scope.get("headers", ()), self.trusted)
            state["client_address"] = address
            if address != client[0]:
                scope["client"] = (address, 0)
        status = 500
        started = False
        span = token = None
        if self.telemetry is not None:
            carrier = {k.decode("latin-1"): v.decode("latin-1")
                       for k, v in scope.get("headers", ()) if k in (b"traceparent", b"tracestate")}
            span, token = self.telemetry.start_server_span(
                f"HTTP {scope.get('method', '')}", carrier, "http", {
                    "http.request.method": scope.get("method", ""),
                    "url.path": scope.get("path", ""), "vnegov.request_id": request_id})

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            route = self.direct.get((scope["path"], scope["method"])) \
                if not scope.get("root_path") else None
            if route is None:
                await self.app(scope, receive, send_with_id)
            else:  # what the router and Starlette's error middleware would do
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                try:
                    await route.app(scope, receive, send_with_id)
                except Exception:
                    if not started:
                        await _ERROR(scope, receive, send_with_id)
                    raise  # logged by the server, as Starlette's error middleware lets it be
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.http_requests.labels(method, path, str(status)).inc()
            self.metrics.http_latency.labels(method, path).observe(time.perf_counter() - started_at)
            if span is not None and self.telemetry is not None:
                span.update_name(f"HTTP {method} {path}")
                self.telemetry.end_server_span(
                    span, token, error=str(status) if status >= 500 else "",
                    attributes={"http.route": path, "http.response.status_code": status})


def _limit_routes(routes: Sequence[BaseRoute], limits: HttpLimits,
                  metrics: Metrics) -> dict[str, str]:
    """Wrap every route's ASGI app with its class's limits; returns path template -> class."""
    classes = limits.classes()
    table = {name: RouteLimits(c.body_bytes, c.rate_per_second, c.burst)
             for name, c in classes.items()}
    limiters = {name: RateLimiter(c.rate_per_second, c.burst, max_clients=limits.rate_limit_clients)
                for name, c in classes.items() if c.rate_per_second > 0}

    def rejected(route_cls: str, why: str) -> None:
        metrics.http_rejected.labels(route_cls, why).inc()

    chosen: dict[str, str] = {}
    for route in routes:
        path = getattr(route, "path", "")
        app = getattr(route, "app", None)
        if app is None or isinstance(app, LimitedRoute):
            continue
        if isinstance(route, Mount):  # classes chosen per request under the mount
            route.app = LimitedRoute(app, "default", table, limiters,
                                     body_timeout=limits.body_timeout_seconds,
                                     metrics_rejected=rejected, classify=route_class)
            chosen[path + "/*"] = "(per path)"
            continue
        name = route_class(path)
        chosen[path] = name
        route.app = LimitedRoute(app, name, table, limiters,  # type: ignore[attr-defined]
                                 body_timeout=limits.body_timeout_seconds,
                                 metrics_rejected=rejected, query=QUERY_RULES.get(path))
    return chosen


def build_http_app(metrics: Metrics, ready: Ready, routes: Sequence[BaseRoute] = (), *,
                   limits: HttpLimits | None = None,
                   trusted_proxies: TrustedProxies | None = None,
                   serve_metrics: bool = True, telemetry: Telemetry | None = None) -> ASGIApp:
    """The public HTTP application. ``serve_metrics`` False: ``/metrics`` is left to the admin
    listener (:func:`build_admin_app`); ``/healthz`` and ``/readyz`` stay on both."""
    every: list[BaseRoute] = [*_operations_routes(metrics, ready, serve_metrics), *routes]
    _limit_routes(every, limits or HttpLimits(), metrics)
    app: Any = Starlette(routes=every)
    return _ObservabilityMiddleware(app, metrics, _direct_routes(every), trusted_proxies,
                                    telemetry)


def _operations_routes(metrics: Metrics, ready: Ready, serve_metrics: bool) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = await ready()
        return JSONResponse({"status": "ready" if ok else "not ready"},
                            status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        await asyncio.to_thread(metrics.refresh)  # domain gauges read the database
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if serve_metrics:
        routes.append(Route("/metrics", metrics_endpoint))
    return routes


def build_admin_app(metrics: Metrics, ready: Ready) -> ASGIApp:
    """The admin listener (``server.admin_port``): ``/metrics``, ``/healthz``, ``/readyz`` only,
    for operators and the balancer's health checks, never exposed on the public port."""
    return Starlette(routes=_operations_routes(metrics, ready, True))


def route_classes(routes: Sequence[BaseRoute]) -> dict[str, str]:
    """Path template -> route class, as :func:`build_http_app` would choose (for tests and docs)."""
    return {getattr(r, "path", ""): ("(per path)" if isinstance(r, Mount)
                                     else route_class(getattr(r, "path", ""))) for r in routes}
