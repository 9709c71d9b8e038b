"""HAProxy (Debian's package) started with the repository's configuration, deploy/haproxy/vnegov.cfg,
in front of replicas on loopback: the tests' own backends file lists them the way
deploy/haproxy/backends.cfg does."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from tests.support.pki import Issued, TestPki, pem
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy" / "vnegov.cfg"
PASSTHROUGH_CONFIG = ROOT / "deploy" / "haproxy" / "passthrough.cfg"


def listen_port() -> int:
    """A free port outside the kernel's ephemeral range, for a server that is restarted during a
    test: a port from that range (``free_port``) may be taken meanwhile by some outgoing
    connection, and the restarted server could not listen on it again."""
    try:
        low, high = (int(x) for x in
                     Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    candidates = [p for p in range(20000, 32000) if not low <= p <= high] or \
        list(range(1025, low))
    for _ in range(200):
        port = random.choice(candidates)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                        if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        raise RuntimeError("HAProxy is not installed (Debian: apt-get install haproxy; "
                           "scripts/dev.sh installs it)")
    return found


@dataclass(frozen=True)
class Replica:
    """Where the balancer reaches one replica."""

    grpc: str  # "unix@/path" or "host:port" of its balancer listener (or its TLS port)
    http_port: int
    admin_port: int


def backends_file(replicas: Sequence[Replica]) -> str:
    grpc_lines = [f"    server r{i} {r.grpc} proto h2 check check-proto h1 addr 127.0.0.1 port {r.admin_port}"
                  for i, r in enumerate(replicas, 1)]
    http_lines = [f"    server r{i} 127.0.0.1:{r.http_port} check port {r.admin_port}"
                  for i, r in enumerate(replicas, 1)]
    return "\n".join(["backend vnegov_grpc", *grpc_lines, "", "backend vnegov_http",
                      "    http-reuse never", *http_lines, ""])


def passthrough_backends_file(replicas: Sequence[Replica]) -> str:
    lines = [f"    server r{i} {r.grpc} send-proxy-v2 check port {r.admin_port}"
             for i, r in enumerate(replicas, 1)]
    return "\n".join(["backend vnegov_grpc_tls", *lines, ""])


class Balancer:
    """``haproxy -f deploy/haproxy/vnegov.cfg -f <backends>`` in the foreground (-db)."""

    def __init__(self, pki: TestPki, directory: Path, replicas: Sequence[Replica], *,
                 passthrough: bool = False) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.stats_port = free_port()
        cert = directory / "haproxy-cert.pem"
        key = pki.server.key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
        cert.write_bytes(pki.server.chain_pem + key)
        cert.chmod(0o600)
        client_ca = directory / "haproxy-client-ca.pem"
        client_ca.write_bytes(pem(pki.root.cert))
        backends = directory / "haproxy-backends.cfg"
        if passthrough:
            backends.write_text(passthrough_backends_file(replicas), encoding="utf-8")
            self.config = [PASSTHROUGH_CONFIG, backends]
        else:
            backends.write_text(backends_file(replicas), encoding="utf-8")
            self.config = [CONFIG, backends]
        self.pki = pki
        self.env = {**os.environ,
                    "VNEGOV_GRPC_BIND": f"127.0.0.1:{self.grpc_port}",
                    "VNEGOV_HTTP_BIND": f"127.0.0.1:{self.http_port}",
                    "VNEGOV_STATS_BIND": f"127.0.0.1:{self.stats_port}",
                    "VNEGOV_TLS_CERT": str(cert),
                    "VNEGOV_CLIENT_CA": str(client_ca)}
        self.log_path = directory / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.channels: list[grpc.aio.Channel] = []

    def command(self) -> list[str]:
        args = [haproxy_binary(), "-db"]
        for path in self.config:
            args += ["-f", str(path)]
        return args

    def start(self, timeout: float = 10.0) -> None:
        self.log = self.log_path.open("ab")
        # posix_spawn (fds left open): see ServerProcess.start.
        self.proc = subprocess.Popen(self.command(), env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, close_fds=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"haproxy did not start:\n{self.logs()}")

    def wait_up(self, count: int, timeout: float = 10.0, *, backend: str = "vnegov_grpc") -> None:
        """Wait until ``count`` servers of ``backend`` pass their health checks."""
        import urllib.request

        deadline = time.monotonic() + timeout
        up = 0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=1) as response:
                    rows = response.read().decode().splitlines()
                up = sum(1 for row in rows if row.startswith(backend + ",")
                         and ",UP," in row and ",BACKEND," not in row)
                if up >= count:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"only {up} of {count} replicas came up behind haproxy:\n"
                           f"{self.logs()}")

    def in_flight(self, server: str, *, backend: str = "vnegov_grpc") -> int:
        """Requests ``server`` (r1, r2...) of ``backend`` is serving now (HAProxy's scur)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats;csv",
                                    timeout=1) as response:
            rows = response.read().decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        for row in rows[1:]:
            fields = dict(zip(header, row.split(","), strict=False))
            if fields.get("pxname") == backend and fields.get("svname") == server:
                return int(fields.get("scur") or 0)
        raise KeyError(f"{backend}/{server}")

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def channel(self, client: Issued | None,
                options: Sequence[tuple[str, object]] = ()) -> grpc.aio.Channel:
        root = pem(self.pki.root.cert)
        creds = grpc.ssl_channel_credentials(root) if client is None else \
            grpc.ssl_channel_credentials(root, client.key_pem, client.chain_pem)
        channel = grpc.aio.secure_channel(f"localhost:{self.grpc_port}", creds,
                                          options=list(options))
        self.channels.append(channel)
        return channel

    async def close_channels(self) -> None:
        for channel in self.channels:
            await channel.close()
        self.channels.clear()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()
