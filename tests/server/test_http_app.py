"""The shared HTTP layer: routes dispatched ahead of the Starlette stack (DirectRoute) get what every
request gets, and are chosen exactly as Starlette's router would choose."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.http.app import DirectRoute, build_http_app
from server.metrics import Metrics


async def ready() -> bool:
    return True


class Plain:
    """A plain ASGI endpoint (Starlette takes a function as a request -> response one)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"direct"})


plain = Plain()


class Failing:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("secret detail")


async def starlette_endpoint(request: Request) -> Response:
    return PlainTextResponse("starlette")


def client(routes: list[Route], metrics: Metrics) -> httpx.AsyncClient:
    app = build_http_app(metrics, ready, routes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False),
                             base_url="http://test")


def count(metrics: Metrics, method: str, route: str, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "http_requests_total", {"method": method, "route": route, "status": status})
    return value or 0.0


async def test_direct_routes_get_request_ids_metrics_and_a_bare_500() -> None:
    metrics = Metrics()
    failing = Failing()
    async with client([DirectRoute("/id/par", plain, methods=["POST"]),
                       DirectRoute("/id/boom", failing, methods=["POST"]),
                       DirectRoute("/id/page", starlette_endpoint)], metrics) as http:
        r = await http.post("/id/par", headers={"x-request-id": "req-12345678"})
        assert (r.status_code, r.text, r.headers["x-request-id"]) == (200, "direct",
                                                                      "req-12345678")
        assert count(metrics, "POST", "/id/par", "200") == 1
        assert len((await http.post("/id/par")).headers["x-request-id"]) == 32

        r = await http.post("/id/boom")
        assert (r.status_code, r.text) == (500, "Internal Server Error")
        assert "secret" not in r.text and r.headers["x-request-id"]
        assert count(metrics, "POST", "/id/boom", "500") == 1

        r = await http.get("/id/page")  # a Starlette endpoint function works as well
        assert (r.status_code, r.text) == (200, "starlette")

        # A method the route does not take goes through Starlette, as before: 405 with Allow.
        r = await http.get("/id/par")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        assert count(metrics, "GET", "/id/par", "405") == 1


async def test_the_route_starlette_would_pick_is_the_one_served() -> None:
    metrics = Metrics()
    async with client([Route("/x/{name}", starlette_endpoint, methods=["POST"]),
                       DirectRoute("/x/fixed", plain, methods=["POST", "PUT"]),
                       Route("/y", starlette_endpoint, methods=["GET"]),
                       DirectRoute("/y", plain, methods=["POST"])], metrics) as http:
        assert (await http.post("/x/fixed")).text == "starlette"  # shadowed by the earlier one
        assert (await http.put("/x/fixed")).text == "direct"
        assert (await http.post("/y")).text == "direct"
        assert (await http.get("/y")).text == "starlette"
        assert (await http.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/id/par/", "/id/PAR"])
async def test_other_paths_are_not_direct(path: str) -> None:
    async with client([DirectRoute("/id/par", plain, methods=["POST"])], Metrics()) as http:
        assert (await http.post(path)).status_code in (307, 404)


async def test_the_error_still_reaches_the_server_log() -> None:
    app = build_http_app(Metrics(), ready, [DirectRoute("/id/boom", Failing(), methods=["POST"])])
    transport = httpx.ASGITransport(app)  # raises what the application raises, as uvicorn logs it
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(RuntimeError, match="secret detail"):
            await http.post("/id/boom")
