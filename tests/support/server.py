"""A real server on loopback ports for tests: started in-process on the test's event loop, or as a
separate process (for signals and kills)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import tomli_w

from server.app import Application
from server.config import Config
from tests.support.pki import Issued, TestPki, pem

ROOT = Path(__file__).resolve().parents[2]

CALLERS = [
    {"agency_code": "000.00.00.H29", "name": "dvc-hcm",
     "scopes": ["identity.read", "payments.collect"], "provinces": ["79"]},
    {"agency_code": "000.00.00.H26", "scopes": ["identity.read"], "provinces": ["01"]},
    {"agency_code": "000.00.00.G22", "scopes": ["identity.read", "audit.read"],
     "provinces": ["*"]},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_config_dict(pki: TestPki, directory: Path, database_url: str, *,
                       plaintext: bool = False, grpc_port: int = 0, http_port: int = 0,
                       grace: float = 5.0, extra: Mapping[str, Any] | None = None
                       ) -> dict[str, Any]:
    files = pki.write(directory / "pki")
    data: dict[str, Any] = {
        "data_dir": str(directory),
        "server": {"grpc_port": grpc_port, "http_port": http_port, "plaintext": plaintext,
                   "shutdown_grace_seconds": grace, "public_url": "http://127.0.0.1:8080"},
        "tls": {"cert_file": str(files["server_chain"]), "key_file": str(files["server_key"]),
                "key_passphrase_file": str(files["passphrase"]),
                "client_ca_files": [str(files["root"])],
                "client_intermediate_files": [str(files["issuing"])]},
        "storage": {"url": database_url},
        "logging": {"level": "WARNING", "format": "json"},
        "auth": {"callers": CALLERS, "plaintext_caller": "000.00.00.G22"},
    }
    for key, value in (extra or {}).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


@dataclass
class RunningServer:
    app: Application
    pki: TestPki
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"localhost:{self.app.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"

    def channel(self, client: Issued | None, *, trust: bytes | None = None) -> grpc.aio.Channel:
        """A TLS channel presenting ``client`` (or no certificate at all)."""
        root = trust or pem(self.pki.root.cert)
        if client is None:
            creds = grpc.ssl_channel_credentials(root)
        else:
            creds = grpc.ssl_channel_credentials(root, client.key_pem, client.chain_pem)
        channel = grpc.aio.secure_channel(self.target, creds)
        self.channels.append(channel)
        return channel

    def plaintext_channel(self) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.app.grpc_port}")
        self.channels.append(channel)
        return channel


@asynccontextmanager
async def running_server(pki: TestPki, directory: Path, database_url: str,
                         **kwargs: Any) -> AsyncIterator[RunningServer]:
    config = Config.from_config(server_config_dict(pki, directory, database_url, **kwargs))
    app = Application(config)
    await app.start()
    running = RunningServer(app, pki)
    try:
        yield running
    finally:
        for channel in running.channels:
            await channel.close()
        await app.stop(1.0)


class ServerProcess:
    """``python -m server serve`` (or another entry module) in a child process, configured by a
    TOML file written from ``config``."""

    def __init__(self, config: dict[str, Any], directory: Path, *,
                 module: str = "server") -> None:
        self.module = module
        self.config_path = directory / "vnegov.toml"
        self.config_path.write_text(tomli_w.dumps(config), encoding="utf-8")
        self.log_path = directory / "server.log"
        self.grpc_port = config["server"]["grpc_port"]
        self.http_port = config["server"]["http_port"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}
        self.log = self.log_path.open("ab")
        # posix_spawn where possible (no cwd change, fds left open): fork() would run gRPC's
        # fork handlers in the child while the test's own gRPC threads are busy (a server
        # restarted under load), which can crash the child before it starts.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--config", str(self.config_path), "serve"],
            cwd=None if Path.cwd() == ROOT else ROOT, env=env, stdout=self.log,
            stderr=subprocess.STDOUT, close_fds=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.http_port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("server process did not exit")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()
