"""Throughput of the gRPC request path beside a bare grpc.aio server, measured in the same run.

    .venv/bin/python benchmarks/server_grpc.py [--seconds 5] [--concurrency 64] [--client auto]
                                               [--rounds 3]

Servers run in their own processes, and so does the client, the same one for every target: a load
generator that keeps N unary calls in flight on one channel (one HTTP/2 connection over mutual
TLS). Targets, same machine, same client:

  baseline  bare grpc.aio health service, grpcio's native mutual TLS, no interceptors
  vnegov    our server: TLS front (pyOpenSSL) -> grpc.aio -> observability, error and auth
            interceptors -> servicer, with one audit event committed (SQLite) per call;
            GetCaller with request validation on (as deployed) and off, two servers running
            side by side, measured in --rounds rounds (on then off, then off then on, ...)
            whose medians are compared
  balanced  the production front door: HAProxy (deploy/haproxy/vnegov.cfg) terminating mutual
            TLS and balancing each call over HTTP/2 to --replicas server processes (default 2),
            which verify the forwarded certificate and commit one audit event (PostgreSQL) per
            call

The client, the servers, the balancer and the database share the machine's CPUs, so the client
must cost far less per call than what it measures, or it measures itself: ``--client auto`` takes
the cheapest one this machine can build, in this order:

  c++     benchmarks/loadgen/loadgen.cc on gRPC's C core (Debian: libgrpc++-dev, g++)
  java    benchmarks/loadgen/LoadGen.java on grpc-java and netty (Debian: libgrpc-java,
          libnetty-java, openjdk-17-jdk-headless); its JIT costs CPU for the first seconds
  python  grpc.aio in one process: about as costly per call as the bare server, so on a small
          machine its figures say more about the client than about the servers (said in the output)

For each target it prints calls/s, the ratio to the baseline, p50 and p99 latency, and the CPU
time per call of each part (client, servers, balancer, PostgreSQL: read from /proc over the
measured window), so the reader sees where the CPU goes. On a 2-core machine the parts compete
for the same cores: the figures compare the servers in one run, not what a deployment with its
own hosts would reach.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

from tests.support.pki import TestPki, pem  # noqa: E402
from tests.support.server import free_port, server_config_dict  # noqa: E402

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


PY_CLIENT = textwrap.dedent("""
    import asyncio, resource, sys, time, grpc
    def cpu():
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime
    async def main():
        target, root, cert, key, method = sys.argv[1:6]
        warmup, seconds, n = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
        read = lambda p: open(p, 'rb').read()
        creds = grpc.ssl_channel_credentials(read(root), read(key), read(cert))
        async with grpc.aio.secure_channel(target, creds) as channel:
            call = channel.unary_unary(method)  # bytes in, bytes out
            opened = time.perf_counter() + warmup
            closes = opened + seconds
            latencies, errors, first, marks = [], 0, '', {}
            async def worker():
                nonlocal errors, first
                while time.perf_counter() < closes:
                    began = time.perf_counter()
                    try:
                        await call(b'')
                        ok = None
                    except grpc.aio.AioRpcError as exc:
                        ok = f'{exc.code().value[0]}:{exc.details()}'
                    now = time.perf_counter()
                    if opened <= now < closes:
                        if ok is None:
                            latencies.append(now - began)
                        else:
                            errors, first = errors + 1, first or ok
            async def mark(name, at):
                await asyncio.sleep(at - time.perf_counter())
                marks[name] = (cpu(), time.perf_counter())
                print(name, flush=True)
            await asyncio.gather(mark('measuring', opened), mark('measured', closes),
                                 *(worker() for _ in range(n)))
        latencies.sort()
        k = len(latencies)
        p = lambda q: int(1e6 * latencies[min(k - 1, int(k * q))]) if k else 0
        (c0, w0), (c1, w1) = marks['measuring'], marks['measured']
        print(f"calls={k} errors={errors} seconds={w1 - w0:.6f} p50_us={p(0.5)} p99_us={p(0.99)} "
              f"cpu_s={c1 - c0:.4f} first_error={first.replace(' ', '_')}", flush=True)
    asyncio.run(main())
""")

LOADGEN = ROOT / "benchmarks" / "loadgen"
JAVA_JARS = ["grpc-api", "grpc-core", "grpc-context", "grpc-stub", "grpc-netty", "guava",
             "failureaccess", "perfmark-api", "error_prone_annotations", "jsr305", "gson",
             "netty-buffer", "netty-codec", "netty-codec-http", "netty-codec-http2",
             "netty-codec-socks", "netty-common", "netty-handler", "netty-handler-proxy",
             "netty-resolver", "netty-transport", "opencensus-api"]


@dataclass(frozen=True)
class LoadClient:
    """How to start the load generator; the target's arguments follow ``command``."""

    name: str
    command: list[str]
    note: str = ""


def build_client(choice: str, directory: Path) -> LoadClient:
    """The load generator: ``choice`` one of auto, c++, java, python. ``auto`` falls back through
    that order when a toolchain is missing (and says why in ``note``)."""
    missing: list[str] = []
    if choice in ("auto", "c++"):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++"],
                               capture_output=True, text=True) \
            if shutil.which("pkg-config") else None
        if shutil.which("g++") is None or flags is None or flags.returncode != 0:
            missing.append("c++ (needs g++ and libgrpc++-dev)")
        else:
            out = directory / "loadgen"
            built = subprocess.run(["g++", "-O2", "-std=c++17", str(LOADGEN / "loadgen.cc"), "-o",
                                    str(out), *flags.stdout.split()],
                                   capture_output=True, text=True)
            if built.returncode == 0:
                return LoadClient("C++ on gRPC's C core (benchmarks/loadgen/loadgen.cc)",
                                  [str(out)])
            missing.append(f"c++ (build failed: {built.stderr.strip()[-300:]})")
        if choice == "c++":
            raise SystemExit("no C++ load generator: " + "; ".join(missing))
    if choice in ("auto", "java"):
        jars = [Path("/usr/share/java") / f"{j}.jar" for j in JAVA_JARS]
        if shutil.which("javac") is None or shutil.which("java") is None or \
                not all(j.exists() or j.stem in ("opencensus-api", "gson") for j in jars[:5]):
            missing.append("java (needs openjdk-17-jdk-headless, libgrpc-java, libnetty-java)")
        else:
            classpath = ":".join(str(j) for j in jars if j.exists())
            built = subprocess.run(
                ["javac", "-nowarn", "--release", "17", "-d", str(directory / "classes"), "-cp",
                 classpath, str(LOADGEN / "LoadGen.java"),
                 str(ROOT / "clients/java/src/io/netty/handler/ssl/DebianJdkAlpn.java")],
                capture_output=True, text=True)
            if built.returncode == 0:
                # C1 only: C2's compiler threads would burn CPU well into the measured window.
                return LoadClient("Java on grpc-java (benchmarks/loadgen/LoadGen.java)",
                                  ["java", "-XX:TieredStopAtLevel=1", "-cp",
                                   f"{directory / 'classes'}:{classpath}",
                                   "vn.vnegov.bench.LoadGen"], "; ".join(missing))
            missing.append(f"java (build failed: {built.stderr.strip()[-300:]})")
        if choice == "java":
            raise SystemExit("no Java load generator: " + "; ".join(missing))
    note = ("Python grpc.aio client: it costs about as much CPU per call as the bare server, so "
            "with it the client, not the servers, sets the rates on a small machine"
            + (f" (not available: {'; '.join(missing)})" if missing else ""))
    return LoadClient("Python grpc.aio (fallback)", [sys.executable, "-c", PY_CLIENT], note)


@dataclass
class Measured:
    rate: float
    p50: float
    p99: float
    calls: int
    errors: int
    first_error: str
    cpu: dict[str, float]  # seconds of CPU per call, by part


def _median(runs: list[Measured]) -> Measured:
    """One figure for rounds of the same measurement: the median of each quantity."""
    mid = statistics.median
    return Measured(mid(m.rate for m in runs), mid(m.p50 for m in runs),
                    mid(m.p99 for m in runs), sum(m.calls for m in runs),
                    sum(m.errors for m in runs),
                    next((m.first_error for m in runs if m.first_error), ""),
                    {k: mid(m.cpu[k] for m in runs) for k in runs[0].cpu})


def _cpu_times() -> tuple[dict[int, float], dict[int, int]]:
    """CPU seconds (user + system) and parent of every process on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, float] = {}
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    return cpu, parent


def _tree(roots: list[int], parent: dict[int, int]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        more = {pid for pid, up in parent.items() if up in found} - found
        found |= more
        grew = bool(more)
    return found


def measure(client: LoadClient, target: str, files: dict[str, Path], method: str,
            args: argparse.Namespace, parts: dict[str, Callable[[], list[int]]]) -> Measured:
    """Run the client against ``target`` and read every part's CPU time at the moments the
    client opens and closes its measured window. ``parts`` name the processes of each part (a
    server's child processes count with it)."""
    proc = subprocess.Popen([*client.command, target, str(files["root"]), str(files["cert"]),
                             str(files["key"]), method, str(args.warmup), str(args.seconds),
                             str(args.concurrency)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    before = after = None
    result: dict[str, str] = {}
    for line in proc.stdout:
        line = line.strip()
        if line == "measuring":
            before = _cpu_times()
        elif line == "measured":
            after = _cpu_times()
        elif line.startswith("calls="):
            result = dict(item.split("=", 1) for item in line.split())
    if proc.wait() != 0 or before is None or after is None or not result:
        raise RuntimeError(f"the load generator failed ({proc.returncode})")
    calls = int(result["calls"])
    cpu: dict[str, float] = {}
    for part, pids in {"client": lambda: [proc.pid], **parts}.items():
        group = _tree(pids(), after[1])
        used = sum(after[0][p] - before[0].get(p, 0.0) for p in group if p in after[0])
        if part == "client":
            used = max(used, float(result["cpu_s"]))  # an exited thread's time is in cpu_s
        cpu[part] = used / calls if calls else float("nan")
    seconds = float(result["seconds"])
    return Measured(calls / seconds if seconds else 0.0, int(result["p50_us"]) / 1e6,
                    int(result["p99_us"]) / 1e6, calls, int(result["errors"]),
                    result.get("first_error", ""), cpu)


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


def _ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as resp:
                return bool(resp.status == 200)
        except OSError:
            return False
    return check


HEALTH = "/grpc.health.v1.Health/Check"
GET_CALLER = "/vnegov.admin.v1.AdminService/GetCaller"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of calls before each measured window (default 2)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--replicas", type=int, default=2,
                        help="server processes behind HAProxy (default 2)")
    parser.add_argument("--client", choices=("auto", "c++", "java", "python"), default="auto",
                        help="the load generator (default: the cheapest this machine builds)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds of GetCaller with validation on and off "
                             "(default 4; their medians are compared)")
    parser.add_argument("--no-balancer", action="store_true",
                        help="skip the HAProxy measurement (no haproxy installed)")
    parser.add_argument("--only", choices=("baseline", "vnegov", "balanced"), action="append",
                        help="measure only these targets (repeatable; the baseline always runs)")
    args = parser.parse_args()
    only = set(args.only or ("baseline", "vnegov", "balanced"))

    pki = TestPki()
    results: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        client = build_client(args.client, d)
        files = pki.write(d / "pki")
        (d / "server.key").write_bytes(pki.server.key_pem)
        client_files = {"root": d / "root.pem", "cert": d / "client.pem", "key": d / "client.key"}
        client_files["root"].write_bytes(pem(pki.root.cert))
        client_files["cert"].write_bytes(pki.hcm.chain_pem)
        client_files["key"].write_bytes(pki.hcm.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

        base_port = free_port()
        base = subprocess.Popen([sys.executable, "-c", BASELINE, str(base_port),
                                 str(d / "server.key"), str(files["server_chain"]),
                                 str(files["root"])], stdout=subprocess.PIPE, env=ENV)
        assert base.stdout is not None and base.stdout.readline().strip() == b"ready"
        try:
            results[BASE] = measure(client, f"localhost:{base_port}", client_files, HEALTH, args,
                                    {"servers": lambda: [base.pid]})
        finally:
            base.send_signal(signal.SIGTERM)
            base.wait()

        import tomli_w

        # The same server twice, both running: request validation (protovalidate) on, as
        # deployed, and off, measured in alternating rounds (on, off, on, off, ...): load from
        # elsewhere on the machine moves both alike instead of one whole figure, and the cost
        # is read from the medians, of the rate and of the server's CPU per call.
        servers: dict[bool, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for validate in (True, False) if "vnegov" in only else ():
                grpc_port, http_port = free_port(), free_port()
                sub = d / ("on" if validate else "off")
                sub.mkdir()
                config = server_config_dict(
                    pki, sub, f"sqlite:///{sub / 'vnegov.db'}", grpc_port=grpc_port,
                    http_port=http_port,
                    extra={"limits": {"grpc": {"validate_requests": validate}}})
                (sub / "vnegov.toml").write_text(tomli_w.dumps(config))
                subprocess.run([sys.executable, "-m", "server", "--config",
                                str(sub / "vnegov.toml"), "migrate"], env=ENV, check=True,
                               capture_output=True)
                proc = subprocess.Popen([sys.executable, "-m", "server", "--config",
                                         str(sub / "vnegov.toml"), "serve"], env=ENV,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                servers[validate] = (proc, f"localhost:{grpc_port}")
                wait_ready(proc, _ready(http_port))
            if servers:
                rounds: dict[bool, list[Measured]] = {True: [], False: []}
                for number in range(args.rounds):
                    # on, off; then off, on; ...: neither server always goes first.
                    for validate in (True, False) if number % 2 == 0 else (False, True):
                        proc, target = servers[validate]
                        rounds[validate].append(measure(
                            client, target, client_files, GET_CALLER, args,
                            {"servers": lambda p=proc.pid: [p]}))
                proc, target = servers[True]
                results["vnegov: Health.Check (TLS front, auth, audit)"] = measure(
                    client, target, client_files, HEALTH, args,
                    {"servers": lambda p=proc.pid: [p]})
                for validate, label in ((True, "validation on"), (False, "validation off")):
                    results[f"vnegov: AdminService.GetCaller ({label})"] = _median(
                        rounds[validate])
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait()

        if not args.no_balancer and "balanced" in only:
            name = f"vnegov: GetCaller via HAProxy, {args.replicas} server processes ({{db}})"
            measured, used = balanced(pki, d, client, client_files, args)
            results[name.format(db=used)] = measured

    report(results, client, args)


def report(results: dict[str, Measured], client: LoadClient, args: argparse.Namespace) -> None:
    baseline = results[BASE].rate
    print(f"client: {client.name}; {args.concurrency} calls in flight on one connection, "
          f"{args.seconds:.0f} s each after {args.warmup:.0f} s of warm-up; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end (client, servers, balancer and "
          "database share these CPUs)")
    if client.note:
        print(f"  NOTE: {client.note}")
    print(f"  {'':60s} {'calls/s':>8s} {'ratio':>6s} {'p50 ms':>7s} {'p99 ms':>7s}   "
          "CPU us/call: client servers balancer PostgreSQL = total")
    for name, m in results.items():
        parts = [m.cpu.get(k) for k in ("client", "servers", "balancer", "PostgreSQL")]
        cells = " ".join(f"{1e6 * v:7.0f}" if v is not None else f"{'-':>7s}" for v in parts)
        total = 1e6 * sum(v for v in parts if v is not None)
        print(f"  {name:60s} {m.rate:8.0f} {m.rate / baseline:5.2f}x {1000 * m.p50:7.1f} "
              f"{1000 * m.p99:7.1f}   {cells} = {total:5.0f}"
              + (f"   {m.errors} errors, first {m.first_error}" if m.errors else ""))
    on = results.get("vnegov: AdminService.GetCaller (validation on)")
    off = results.get("vnegov: AdminService.GetCaller (validation off)")
    if on is not None and off is not None:
        print(f"  validation and limits cost GetCaller {100 * (1 - on.rate / off.rate):+.1f}% of "
              f"its rate and {100 * (on.cpu['servers'] / off.cpu['servers'] - 1):+.1f}% server "
              f"CPU per call (medians of {args.rounds} alternating rounds; target: at most 5%; "
              "GetCallerRequest declares no constraint, so what is measured is the per-type "
              "check that skips the validator)")
    for name, m in results.items():
        if "HAProxy" in name:
            print(f"  balanced GetCaller: {m.rate / baseline:.2f}x the baseline (target >= 1.0x), "
                  f"p99 {1000 * m.p99:.1f} ms (target <= 20 ms)")


def balanced(pki: TestPki, d: Path, client: LoadClient, client_files: dict[str, Path],
             args: argparse.Namespace) -> tuple[Measured, str]:
    """GetCaller through deploy/haproxy/vnegov.cfg to ``args.replicas`` server processes, each
    with its balancer listener on a Unix socket, on PostgreSQL when one is reachable (the
    deployment the balancer is for), else on one SQLite file."""
    import tomli_w

    from tests.support.balancer import Balancer, Replica

    url, drop, backends = _database()
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
        for i, (proc, replica) in enumerate(zip(procs, replicas, strict=True)):
            try:
                wait_ready(proc, _ready(replica.admin_port))
            except RuntimeError:
                print((d / f"replica{i}" / "server.log").read_text()[-3000:])
                raise
        balancer = Balancer(pki, d / "haproxy", replicas)
        balancer.start()
        balancer.wait_up(len(replicas))
        assert balancer.proc is not None
        haproxy = balancer.proc.pid
        parts = {"servers": lambda: [p.pid for p in procs], "balancer": lambda: [haproxy]}
        if backends is not None:
            parts["PostgreSQL"] = backends
        measured = measure(client, f"localhost:{balancer.grpc_port}", client_files, GET_CALLER,
                           args, parts)
        return measured, used
    finally:
        if balancer is not None:
            balancer.stop()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        drop()


def _database() -> tuple[str, Callable[[], None], Callable[[], list[int]] | None]:
    """A fresh PostgreSQL database (its URL, how to drop it, and how to list the server processes
    that work for it: its backends and the WAL writer), else one SQLite file."""
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
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", lambda: None, None

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    def backends() -> list[int]:
        with engine.connect() as conn:
            return [int(pid) for pid in conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE (datname = :name AND pid <> "
                "pg_backend_pid()) OR backend_type = 'walwriter'"), {"name": name}).scalars()]

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop, backends


if __name__ == "__main__":
    main()
