"""The test-only ProbeService: generated at import time into a temporary directory and plugged into
the server as a module (in-process, or in a child process through ``python -m tests.support.probe``).
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc_tools

import payments.errors
import signing.errors
import vnid.errors
from server.modules import MODULES, AppContext, GrpcService, Module

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
_OUT = Path(tempfile.mkdtemp(prefix="vnegov-probe-"))
subprocess.run([
    sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE / 'proto'}", f"-I{ROOT / 'proto'}",
    f"-I{Path(grpc_tools.__file__).parent / '_proto'}", f"--python_out={_OUT}",
    f"--grpc_python_out={_OUT}", "vnegov_probe/v1/probe.proto",
], check=True, capture_output=True)
for d in (_OUT / "vnegov_probe", _OUT / "vnegov_probe" / "v1"):
    (d / "__init__.py").touch()
sys.path.insert(0, str(_OUT))
probe_pb2: Any = importlib.import_module("vnegov_probe.v1.probe_pb2")
probe_pb2_grpc: Any = importlib.import_module("vnegov_probe.v1.probe_pb2_grpc")

SECRET = "s3cr3t-database-password"

FAILURES = {
    "runtime": lambda: RuntimeError(f"connection to postgres://admin:{SECRET}@db failed"),
    "vnid_invalid": lambda: vnid.errors.InvalidInput("personal ID must have 12 digits",
                                                     reason="INVALID_PERSONAL_ID",
                                                     metadata={"field": "personal_id"}),
    "signing_not_found": lambda: signing.errors.NotFound("no such certificate",
                                                         reason="CERTIFICATE_NOT_FOUND"),
    "payments_conflict": lambda: payments.errors.Conflict("request_id reused",
                                                          reason="REQUEST_ID_REUSED"),
    "payments_precondition": lambda: payments.errors.FailedPrecondition(
        "payment expired", reason="PAYMENT_EXPIRED"),
    "rate": lambda: vnid.errors.RateLimited("slow down"),
}


class ProbeServicer(probe_pb2_grpc.ProbeServiceServicer):  # type: ignore[misc]
    async def Sleep(self, request: Any, context: Any) -> Any:
        await asyncio.sleep(request.seconds)
        return probe_pb2.SleepResponse(slept=request.seconds)

    async def Fail(self, request: Any, context: Any) -> Any:
        raise FAILURES[request.kind]()

    async def Count(self, request: Any, context: Any) -> Any:
        for n in range(1, request.up_to + 1):
            if request.fail_at and n == int(request.fail_at):
                raise FAILURES["payments_precondition"]()
            yield probe_pb2.CountResponse(n=n)


def probe_module(ctx: AppContext) -> Module:
    class Probe(Module):
        name = "probe"

        def grpc_services(self) -> list[GrpcService]:
            return [GrpcService("vnegov_probe.v1.ProbeService", ProbeServicer(),
                                probe_pb2_grpc.add_ProbeServiceServicer_to_server)]

    return Probe()


def install() -> None:
    if probe_module not in MODULES:
        MODULES.append(probe_module)


if __name__ == "__main__":  # the server, with the probe service, in a child process
    from server.cli import main

    install()
    sys.exit(main(sys.argv[1:]))
