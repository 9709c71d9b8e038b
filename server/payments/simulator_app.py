"""The national payment platform simulator served over HTTP, for tests and the demo.

    POST /init         INIT (JSON, MaXacThuc) -> payment URL
    POST /query        QUERY -> TrangThaiGD
    POST /pay/{ref}    the citizen pays: the simulator posts the signed confirmation callback to
                       ``callback_url`` and returns the partner's answer

It wraps :class:`payments.channels.PlatformSimulator`, which holds the wire-format logic.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payments.channels import PlatformSimulator

__all__ = ["platform_app"]


def platform_app(simulator: PlatformSimulator, *, callback_url: str,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> Starlette:
    async def init(request: Request) -> Response:
        message: Any = json.loads(await request.body())
        return JSONResponse(simulator.handle_init(message, now=clock()))

    async def query(request: Request) -> Response:
        message: Any = json.loads(await request.body())
        return JSONResponse(simulator.handle_query(message, now=clock()))

    async def pay(request: Request) -> Response:
        reference = request.path_params["reference"]
        if reference not in simulator.payments:
            return JSONResponse({"error": "unknown reference"}, status_code=404)
        success = request.query_params.get("success", "1") == "1"
        callback = simulator.pay(reference, now=clock(), success=success)
        if request.query_params.get("deliver", "1") != "1":
            return JSONResponse({"delivered": False, "callback": callback})
        async with httpx.AsyncClient(timeout=10) as client:
            answer = (await client.post(callback_url, json=callback)).json()
        return JSONResponse({"delivered": True, "answer": answer,
                             "code": simulator.check_answer(answer)})

    return Starlette(routes=[Route("/init", init, methods=["POST"]),
                             Route("/query", query, methods=["POST"]),
                             Route("/pay/{reference}", pay, methods=["POST"])])
