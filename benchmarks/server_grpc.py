"""Throughput of the gRPC request path beside a bare grpc.aio server, measured in the same run.

    .venv/bin/python benchmarks/server_grpc.py [--seconds 5] [--concurrency 64]

Servers run in their own processes; this process is the client (grpc.aio, one channel, N calls in
flight). Three servers, same machine, same client:

  baseline  bare grpc.aio health service, grpcio's native mutual TLS, no interceptors
  vnegov    our server: TLS front (pyOpenSSL) -> grpc.aio -> observability, error and auth
            interceptors -> servicer, with one audit event committed (SQLite) per call

Prints calls/s for each and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

from tests.support.pki import TestPki, pem  # noqa: E402
from tests.support.server import free_port, server_config_dict  # noqa: E402
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}

BASELINE = textwrap.dedent("""
    import asyncio, sys, grpc
    from grpc_health.v1 import health, health_pb2_grpc
    async def main():
        port, key, chain, root = int(sys.argv[1]), *[open(p, 'rb').read() for p in sys.argv[2:5]]
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_secure_port(f'127.0.0.1:{port}',
                               grpc.ssl_server_credentials([(key, chain)], root, True))
        await server.start()
        print('ready', flush=True)
        await server.wait_for_termination()
    asyncio.run(main())
""")


async def drive(make_call, seconds: float, concurrency: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(200):  # warm up
        await make_call()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await make_call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


def wait_ready(proc: subprocess.Popen[bytes], check) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    pki = TestPki()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = pki.write(d / "pki")
        (d / "server.key").write_bytes(pki.server.key_pem)
        (d / "client.pem").write_bytes(pki.hcm.chain_pem)
        creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                             pki.hcm.chain_pem)
        results: dict[str, float] = {}

        base_port = free_port()
        base = subprocess.Popen([sys.executable, "-c", BASELINE, str(base_port),
                                 str(d / "server.key"), str(files["server_chain"]),
                                 str(files["root"])], stdout=subprocess.PIPE, env=ENV)
        assert base.stdout is not None and base.stdout.readline().strip() == b"ready"
        try:
            async with grpc.aio.secure_channel(f"localhost:{base_port}", creds) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                results["baseline: bare grpc.aio Health.Check, native mTLS"] = await drive(
                    lambda: stub.Check(health_pb2.HealthCheckRequest()), args.seconds,
                    args.concurrency)
        finally:
            base.send_signal(signal.SIGTERM)
            base.wait()

        import tomli_w

        # The same server twice: request validation (protovalidate) on, as deployed, and off,
        # to show what the checks cost GetCaller in the same run.
        for label, validate in (("validation on", True), ("validation off", False)):
            grpc_port, http_port = free_port(), free_port()
            config = server_config_dict(pki, d, f"sqlite:///{d / 'vnegov.db'}",
                                        grpc_port=grpc_port, http_port=http_port,
                                        extra={"limits": {"grpc": {"validate_requests": validate}}})
            (d / "vnegov.toml").write_text(tomli_w.dumps(config))
            subprocess.run([sys.executable, "-m", "server", "--config", str(d / "vnegov.toml"),
                            "migrate"], env=ENV, check=True, capture_output=True)
            ours = subprocess.Popen([sys.executable, "-m", "server", "--config",
                                     str(d / "vnegov.toml"), "serve"], env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def ready(port: int = http_port) -> bool:
                import urllib.request
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as r:
                        return bool(r.status == 200)
                except OSError:
                    return False

            wait_ready(ours, ready)
            try:
                async with grpc.aio.secure_channel(f"localhost:{grpc_port}", creds) as ch:
                    health = health_pb2_grpc.HealthStub(ch)
                    admin = admin_pb2_grpc.AdminServiceStub(ch)
                    if validate:
                        results["vnegov: Health.Check (TLS front, auth, audit)"] = await drive(
                            lambda h=health: h.Check(health_pb2.HealthCheckRequest()),
                            args.seconds, args.concurrency)
                    results[f"vnegov: AdminService.GetCaller ({label})"] = await drive(
                        lambda a=admin: a.GetCaller(admin_pb2.GetCallerRequest()), args.seconds,
                        args.concurrency)
            finally:
                ours.send_signal(signal.SIGTERM)
                ours.wait()

    baseline = next(iter(results.values()))
    print(f"{args.concurrency} calls in flight, {args.seconds:.0f} s each, "
          f"{os.cpu_count()} CPUs")
    for name, rate in results.items():
        print(f"  {name:60s} {rate:8.0f} calls/s   {rate / baseline:5.2f}x baseline")
    on = results["vnegov: AdminService.GetCaller (validation on)"]
    off = results["vnegov: AdminService.GetCaller (validation off)"]
    print(f"  validation and limits cost GetCaller {100 * (1 - on / off):+.1f}% of its rate "
          "(target: at most 5%)")


if __name__ == "__main__":
    asyncio.run(main())
