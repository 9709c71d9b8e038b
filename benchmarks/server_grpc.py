"""Throughput of the gRPC request path beside a bare grpc.aio server, measured in the same run.

    .venv/bin/python benchmarks/server_grpc.py [--seconds 5] [--concurrency 64]

Servers run in their own processes; this process is the client (grpc.aio, one channel, N calls in
flight). Three servers, same machine, same client:

  baseline  bare grpc.aio health service, grpcio's native mutual TLS, no interceptors
  vnegov    our server: TLS front (pyOpenSSL) -> grpc.aio -> observability, error and auth
            interceptors -> servicer, with one audit event committed (SQLite) per call
  balanced  the production front door: HAProxy (deploy/haproxy/vnegov.cfg) terminating mutual
            TLS and balancing each call over HTTP/2 to --replicas server processes (default 2),
            which verify the forwarded certificate and commit one audit event (PostgreSQL) per
            call

Prints calls/s for each, the ratio to the baseline and the 99th percentile latency. The client,
the servers, the balancer and the database share the machine's CPUs: on a 2-core machine the
client alone takes much of one core, so the figures say how the parts compare in one run, not
what a deployment with its own hosts would reach.
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
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

from tests.support.pki import TestPki, pem  # noqa: E402
from tests.support.server import free_port, server_config_dict  # noqa: E402
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402

BASE = "baseline: bare grpc.aio Health.Check, native mTLS"
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


P99: dict[str, float] = {}


async def drive(make_call, seconds: float, concurrency: int,  # type: ignore[no-untyped-def]
                label: str = "") -> float:
    """Calls/s with ``concurrency`` calls in flight; the 99th percentile latency goes to P99."""
    for _ in range(200):  # warm up
        await make_call()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            await make_call()
            latencies.append(time.perf_counter() - began)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    if label and latencies:
        P99[label] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / (time.perf_counter() - start)


def wait_ready(proc: subprocess.Popen[bytes], check,  # type: ignore[no-untyped-def]
               timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout  # generous: the machine may be busy
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
    parser.add_argument("--replicas", type=int, default=2,
                        help="server processes behind HAProxy (default 2)")
    parser.add_argument("--no-balancer", action="store_true",
                        help="skip the HAProxy measurement (no haproxy installed)")
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
                results[BASE] = await drive(
                    lambda: stub.Check(health_pb2.HealthCheckRequest()), args.seconds,
                    args.concurrency, BASE)
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
                        name = "vnegov: Health.Check (TLS front, auth, audit)"
                        results[name] = await drive(
                            lambda h=health: h.Check(health_pb2.HealthCheckRequest()),
                            args.seconds, args.concurrency, name)
                    name = f"vnegov: AdminService.GetCaller ({label})"
                    results[name] = await drive(
                        lambda a=admin: a.GetCaller(admin_pb2.GetCallerRequest()), args.seconds,
                        args.concurrency, name)
            finally:
                ours.send_signal(signal.SIGTERM)
                ours.wait()

        if not args.no_balancer:
            name = f"vnegov: GetCaller via HAProxy, {args.replicas} server processes ({{db}})"
            rate, used = await balanced(pki, d, creds, args, name)
            name = name.format(db=used)
            results[name] = rate
            P99[name] = P99.pop("balanced")

    baseline = results[BASE]
    print(f"{args.concurrency} calls in flight, {args.seconds:.0f} s each, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
          "(client, servers, balancer and database share these CPUs)")
    for name, rate in results.items():
        print(f"  {name:72s} {rate:8.0f} calls/s   {rate / baseline:5.2f}x baseline   "
              f"p99 {1000 * P99.get(name, float('nan')):6.1f} ms")
    on = results["vnegov: AdminService.GetCaller (validation on)"]
    off = results["vnegov: AdminService.GetCaller (validation off)"]
    print(f"  validation and limits cost GetCaller {100 * (1 - on / off):+.1f}% of its rate "
          "(target: at most 5%)")


async def balanced(pki: TestPki, d: Path, creds: grpc.ChannelCredentials,
                   args: argparse.Namespace, label: str) -> tuple[float, str]:
    """GetCaller through deploy/haproxy/vnegov.cfg to ``args.replicas`` server processes, each
    with its balancer listener on a Unix socket, on PostgreSQL when one is reachable (the
    deployment the balancer is for), else on one SQLite file."""
    import tomli_w

    from tests.support.balancer import Balancer, Replica

    url, drop = _database()
    used = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    procs: list[subprocess.Popen[bytes]] = []
    replicas: list[Replica] = []
    balancer: Balancer | None = None
    try:
        for i in range(args.replicas):
            r = d / f"replica{i}"
            r.mkdir()
            http_port, admin_port = free_port(), free_port()
            config = server_config_dict(pki, r, url, grpc_port=free_port(), http_port=http_port,
                                        extra={"server": {"balancer_listen": f"unix:{r}/g.sock",
                                                          "admin_port": admin_port}})
            (r / "vnegov.toml").write_text(tomli_w.dumps(config))
            if i == 0:
                subprocess.run([sys.executable, "-m", "server", "--config", str(r / "vnegov.toml"),
                                "migrate"], env=ENV, check=True, capture_output=True)
            log = (r / "server.log").open("ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "server", "--config",
                                           str(r / "vnegov.toml"), "serve"], env=ENV,
                                          stdout=log, stderr=subprocess.STDOUT))
            log.close()
            replicas.append(Replica(f"unix@{r}/g.sock", http_port, admin_port))
        for proc, replica in zip(procs, replicas, strict=True):
            def ready(port: int = replica.admin_port) -> bool:
                import urllib.request
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as resp:
                        return bool(resp.status == 200)
                except OSError:
                    return False
            try:
                wait_ready(proc, ready)
            except RuntimeError:
                print((d / f"replica{procs.index(proc)}" / "server.log").read_text()[-3000:])
                raise
        balancer = Balancer(pki, d / "haproxy", replicas)
        balancer.start()
        balancer.wait_up(len(replicas))
        async with grpc.aio.secure_channel(f"localhost:{balancer.grpc_port}", creds) as ch:
            admin = admin_pb2_grpc.AdminServiceStub(ch)
            rate = await drive(lambda: admin.GetCaller(admin_pb2.GetCallerRequest()),
                               args.seconds, args.concurrency, "balanced")
        return rate, used
    finally:
        if balancer is not None:
            balancer.stop()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        drop()


def _database() -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text

    from tests.support.databases import postgres_admin_url

    admin_url = postgres_admin_url()
    name = f"vnegov_bench_{os.getpid()}"
    try:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                               connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # noqa: BLE001 - no PostgreSQL here: one SQLite file for all processes
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", lambda: None

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


if __name__ == "__main__":
    asyncio.run(main())
