"""The deployment files in deploy/ are valid for the tools that read them: HAProxy's configuration
check, systemd's unit verifier; and HAProxy's list of calls it must never re-send matches the
published service config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import vnegov_client
from tests.support.balancer import haproxy_binary
from tests.support.pki import TestPki

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _haproxy_env(pki: TestPki, tmp_path: Path) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    cert = tmp_path / "cert.pem"
    cert.write_bytes(pki.server.chain_pem + pki.server.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / "ca.pem").write_bytes(pki.root.cert.public_bytes(serialization.Encoding.PEM))
    return {**os.environ, "VNEGOV_GRPC_BIND": "127.0.0.1:1", "VNEGOV_HTTP_BIND": "127.0.0.1:2",
            "VNEGOV_STATS_BIND": "127.0.0.1:3", "VNEGOV_TLS_CERT": str(cert),
            "VNEGOV_CLIENT_CA": str(tmp_path / "ca.pem")}


@pytest.mark.parametrize("files", [
    ["haproxy/vnegov.cfg", "haproxy/backends.cfg"],
])
def test_haproxy_accepts_the_configuration(files: list[str], pki: TestPki,
                                           tmp_path: Path) -> None:
    args = [haproxy_binary(), "-c"]
    for name in files:
        args += ["-f", str(DEPLOY / name)]
    done = subprocess.run(args, env=_haproxy_env(pki, tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_haproxy_accepts_the_passthrough_configuration(pki: TestPki, tmp_path: Path) -> None:
    backends = tmp_path / "backends.cfg"
    backends.write_text("backend vnegov_grpc_tls\n"
                        "    server r1 127.0.0.1:50051 send-proxy-v2 check port 9464\n")
    done = subprocess.run([haproxy_binary(), "-c", "-f", str(DEPLOY / "haproxy/passthrough.cfg"),
                           "-f", str(backends)], env=_haproxy_env(pki, tmp_path),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_haproxy_never_resends_what_the_service_config_never_retries() -> None:
    config = (DEPLOY / "haproxy/vnegov.cfg").read_text()
    in_haproxy = set(re.findall(r"acl vnegov_not_repeatable path (\S+)", config))
    not_retried = {f"/{n['service']}/{n['method']}"
                   for entry in vnegov_client.service_config()["methodConfig"]
                   if "retryPolicy" not in entry for n in entry["name"]}
    assert in_haproxy == not_retried
    assert "http-request disable-l7-retry if vnegov_not_repeatable" in config


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").iterdir()))
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    # Copied so that the template unit can be verified as an instance (vnegov@1.service).
    name = unit.replace("@.", "@1.")
    shutil.copy(DEPLOY / "systemd" / unit, tmp_path / unit)
    if name != unit:
        shutil.copy(DEPLOY / "systemd" / unit, tmp_path / name)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
                          capture_output=True, text=True, cwd=tmp_path)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if line.strip() and "is not executable" not in line
                and "No such file or directory" not in line]
    assert problems == [], problems
