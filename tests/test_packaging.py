"""The distribution: a wheel builds (`python -m build`), installs with its runtime alone into a
clean environment (scripts/serve_env.sh, as `scripts/dev.sh serve` does), and its `vnegov`
command initialises a data directory and serves from there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import grpc
import pytest

from tests.support.server import free_port
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SERVE_ONLY_LIMIT_MB = 211  # a third of the 634 MB environment serve used to install

pytestmark = pytest.mark.slow


def test_wheel_installs_and_serves_from_a_clean_environment(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                           "--outdir", str(tmp_path / "dist"), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    wheel = tmp_path / "dist" / f"vnegov-{version}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("vnegov/__init__.py", "vnegov/identity/v1/identity_pb2.py",
                   "buf/validate/validate_pb2.py", "payments/fees/data/sample.yaml",
                   "server/storage/migrations/env.py"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "examples/", "proto/")) for n in names)

    env = tmp_path / "env"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VNEGOV", "PYTHONPATH", "VIRTUAL_ENV"))}
    done = subprocess.run([str(ROOT / "scripts" / "serve_env.sh"), str(env), f"{wheel}[server]"],
                          capture_output=True, text=True, timeout=900, env=clean)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    installed = {p.name.split("-")[0].lower()
                 for p in (env / "lib").glob("python3*/site-packages/*.dist-info")}
    assert "vnegov" in installed
    assert not installed & {"pytest", "mypy", "playwright", "ruff", "endesive", "grpcio_tools",
                            "pip", "setuptools"}, installed

    data, grpc_port, http_port = tmp_path / "data", free_port(), free_port()
    done = subprocess.run([str(env / "bin" / "vnegov"), "--data-dir", str(data), "init",
                           "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
                          capture_output=True, text=True, timeout=120, env=clean, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    got = subprocess.run([str(env / "bin" / "python"), "-c",
                          "import vnegov; print(vnegov.__version__)"],
                         capture_output=True, text=True, env=clean, cwd=tmp_path)
    assert got.stdout.strip() == version, got.stderr

    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen([str(env / "bin" / "vnegov"), "--data-dir", str(data), "serve"],
                              stdout=log, stderr=subprocess.STDOUT, env=clean, cwd=tmp_path)
    try:
        for _ in range(900):
            log.seek(0)
            if "serving gRPC" in log.read() or server.poll() is not None:
                break
            time.sleep(0.1)
        log.seek(0)
        output = log.read()
        assert f"gRPC (mutual TLS) on 127.0.0.1:{grpc_port}" in output, output[-3000:]
        pki = data / "pki"
        credentials = grpc.ssl_channel_credentials(
            (pki / "root-ca.pem").read_bytes(), (pki / "clients" / "dvc-hcm.key.pem").read_bytes(),
            (pki / "clients" / "dvc-hcm.pem").read_bytes())
        with grpc.secure_channel(f"localhost:{grpc_port}", credentials) as channel:
            caller = admin_pb2_grpc.AdminServiceStub(channel).GetCaller(
                admin_pb2.GetCallerRequest(), timeout=10)
        assert caller.agency_code == "000.00.00.H29"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    size_mb = sum(f.stat().st_size for f in env.rglob("*") if f.is_file() and not f.is_symlink()
                  ) / 2**20
    print(f"serve-only environment after init and serve: {size_mb:.0f} MB "
          f"(limit {SERVE_ONLY_LIMIT_MB} MB)")
    assert size_mb <= SERVE_ONLY_LIMIT_MB
