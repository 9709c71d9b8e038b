"""Assembly of the ASGI application served next to gRPC."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import Metrics

__all__ = ["DirectRoute", "build_http_app"]

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
    """Request id (``X-Request-Id`` in and out) and request metrics, as pure ASGI (no buffering)."""

    def __init__(self, app: ASGIApp, metrics: Metrics,
                 direct: dict[tuple[str, str], Route] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.direct = direct or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        request_id = uuid.uuid4().hex
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and 8 <= len(value) <= 64 and value.isascii():
                request_id = value.decode()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False

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


def build_http_app(metrics: Metrics, ready: Ready, routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = await ready()
        return JSONResponse({"status": "ready" if ok else "not ready"},
                            status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    every: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *routes,
    ]
    app: Any = Starlette(routes=every)
    return _ObservabilityMiddleware(app, metrics, _direct_routes(every))
