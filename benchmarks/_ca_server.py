"""Shared by the CA benchmarks: a data directory made by ``vnegov init`` (development PKI, ECDSA
P-256 CA key in an encrypted file, SQLite unless a database URL is given) and the server running
on it in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchServer:
    def __init__(self, database_url: str = "", extra_env: dict[str, str] | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="vnegov-bench-")
        self.data = Path(self.tmp.name) / "data"
        self.grpc_port, self.http_port = free_port(), free_port()
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")]),
                    "VNEGOV__LOGGING__LEVEL": "WARNING", **(extra_env or {})}
        if database_url:
            self.env["VNEGOV__STORAGE__URL"] = database_url
        self._cli("init", "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port))
        if database_url:
            self._cli("migrate")
        self.proc: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "server", "--data-dir", str(self.data), *args],
                       cwd=ROOT, env=self.env, check=True, capture_output=True)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pki(self) -> Path:
        return self.data / "pki"

    def start(self) -> None:
        self.log = open(self.data / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "server", "--data-dir",
                                      str(self.data), "serve"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.http}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start:\n"
                           + (self.data / "server.log").read_text(errors="replace"))

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()
        self.tmp.cleanup()
