"""The README's path, on non-default ports: `vnegov init` with the ports from an option and an
environment override, `vnegov serve`, then the examples exactly as their docstrings say (the data
directory named by VNEGOV_DATA_DIR): they find the server from the data directory, and remote
signing works with the token `init` created."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.signing.sign.pdfs import decision_pdf
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
VNEGOV = str(Path(sys.executable).parent / "vnegov")
OWNER = "079084000123"

pytestmark = pytest.mark.slow


@dataclass
class Demo:
    data: Path
    grpc_port: int
    http_port: int
    env: dict[str, str]
    banner: str

    def run(self, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                              cwd=cwd or ROOT, timeout=120)

    def vnegov(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.run(VNEGOV, *argv)

    def example(self, name: str, *argv: str, cwd: Path | None = None
                ) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, str(ROOT / "examples" / name), *argv, cwd=cwd)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    base = tmp_path_factory.mktemp("demo")
    grpc_port, http_port = free_port(), free_port()
    # As a newcomer's shell: no SoftHSM configuration of another test's tokens (the session's
    # SoftHSM fixture sets SOFTHSM2_CONF in this process), so init's own token is the one used.
    inherited = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env = {**inherited, "VNEGOV_DATA_DIR": str(base / "data"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")]),
           "VNEGOV__SERVER__HTTP_PORT": str(http_port)}
    done = subprocess.run([VNEGOV, "init", "--grpc-port", str(grpc_port)], capture_output=True,
                          text=True, env=env, cwd=base, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (base / "serve.log").open("w+")
    server = subprocess.Popen([VNEGOV, "serve"], stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=base)
    banner = ""
    try:
        for _ in range(300):
            log.seek(0)
            banner = next((line for line in log if "serving gRPC" in line), "")
            if banner or server.poll() is not None:
                break
            time.sleep(0.1)
        log.seek(0)
        assert banner, log.read()
        yield Demo(base / "data", grpc_port, http_port, env, banner)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_init_follows_the_option_and_the_environment(demo: Demo) -> None:
    config = tomllib.loads((demo.data / "vnegov.toml").read_text())
    public = f"http://127.0.0.1:{demo.http_port}"
    assert config["server"]["grpc_port"] == demo.grpc_port
    assert config["server"]["http_port"] == demo.http_port
    assert config["server"]["public_url"] == public
    assert config["documents"]["tsa_url"] == f"{public}/pki/tsa"
    server = x509.load_pem_x509_certificates((demo.data / "pki" / "server.pem").read_bytes())[0]
    urls = re.findall(rb"http://[\x21-\x7e]+", server.public_bytes(Encoding.DER))
    assert urls and all(u.startswith(public.encode()) for u in urls), urls
    assert not any(b":8080" in u for u in urls)


def test_the_banner_says_what_is_served(demo: Demo) -> None:
    assert f"gRPC (mutual TLS) on 127.0.0.1:{demo.grpc_port}" in demo.banner
    assert f"HTTP on 127.0.0.1:{demo.http_port}" in demo.banner
    assert f"public URL http://127.0.0.1:{demo.http_port}" in demo.banner


def test_get_caller_example_finds_the_server(demo: Demo) -> None:
    done = demo.example("get_caller.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "health: SERVING" in done.stdout and "agency_code: 000.00.00.H29" in done.stdout


def test_remote_signing_works_after_the_serve_command(demo: Demo, tmp_path: Path) -> None:
    # A credential naming a key the token does not hold is refused, and nothing is stored.
    chain = tmp_path / "an-chain.pem"
    chain.write_bytes((demo.data / "pki" / "agencies" / "000-00-00-H29.pem").read_bytes())
    refused = demo.vnegov("documents", "credential-add", "--credential-id", "an-2025",
                          "--owner", OWNER, "--agency-code", "000.00.00.H29",
                          "--key-label", "an-2025", "--cert-file", str(chain))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("vnegov: ") and refused.stderr.count("\n") == 1 and \
        refused.stderr.rstrip().endswith("[TOKEN_KEY_NOT_FOUND]"), refused.stderr

    # The docstring's set-up, then the example.
    steps = [
        ["documents", "key-generate", "--label", "an-2025", "--owner", OWNER,
         "--name", "Nguyễn Văn An", "--title", "Chủ tịch", "--cert-out", str(chain)],
        ["documents", "credential-add", "--credential-id", "an-2025", "--owner", OWNER,
         "--agency-code", "000.00.00.H29", "--key-label", "an-2025", "--cert-file", str(chain)],
    ]
    for step in steps:
        done = demo.vnegov(*step)
        assert done.returncode == 0, done.stdout + done.stderr
    # A second credential for the same label but another key's certificate: refused.
    other = tmp_path / "other.pem"
    other.write_bytes((demo.data / "pki" / "agencies" / "000-00-00-H29.pem").read_bytes())
    mismatch = demo.vnegov("documents", "credential-add", "--credential-id", "an-other",
                           "--owner", OWNER, "--agency-code", "000.00.00.H29",
                           "--key-label", "an-2025", "--cert-file", str(other))
    assert mismatch.returncode == 2 and "[SIGNER_KEY_MISMATCH]" in mismatch.stderr
    totp = demo.vnegov("documents", "totp", "--owner", OWNER)
    assert totp.returncode == 0, totp.stderr
    secret = re.search(r"secret=([A-Z2-7]+)", totp.stdout).group(1)  # type: ignore[union-attr]

    pdf = tmp_path / "decision.pdf"
    pdf.write_bytes(decision_pdf())
    now = int(time.time()) // 30
    # Twice in a row: this time step's code, then the next one's (the server accepts one step
    # ahead, and each code once).
    for step in (now, now + 1):
        code = pyotp.TOTP(secret).at(step * 30)
        done = demo.example("sign_remote.py", str(pdf), "--signer-id", OWNER, "--code", code,
                            "--tsa", "local", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "signed " in done.stdout and "B_T" in done.stdout.replace("-", "_"), done.stdout
    signed = tmp_path / "decision-remote-signed.pdf"
    assert signed.read_bytes().startswith(b"%PDF") and signed.stat().st_size > len(decision_pdf())
    verified = demo.vnegov("verify", str(signed))
    assert "Nguyễn Văn An" in verified.stdout, verified.stdout + verified.stderr


@pytest.mark.parametrize(("example", "folder"), [("pay_vietqr.py", "pay-vietqr"),
                                                  ("reconcile_day.py", "reconcile-day")])
def test_payments_examples_write_only_their_folder_and_run_twice(demo: Demo, tmp_path: Path,
                                                                 example: str, folder: str) -> None:
    for _ in range(2):
        done = demo.example(example, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [folder]
    assert any(p.suffix == ".pdf" for p in (tmp_path / folder).iterdir())


def test_sign_decision_with_the_servers_tsa_writes_beside_and_runs_twice(demo: Demo,
                                                                         tmp_path: Path) -> None:
    for _ in range(2):
        done = demo.example("sign_decision.py", "--tsa", "local", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("PAdES-B-T: TOTAL-PASSED") == 2, done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decision-signed.pdf", "demo-root.pem"]
    # Then examples/sign_verify.py as its docstring says.
    done = demo.example("sign_verify.py", "decision-signed.pdf", "--trust", "demo-root.pem",
                        "--trust", str(demo.data / "pki" / "root-ca.pem"), "--no-revocation",
                        cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Overall: TOTAL-PASSED" in done.stdout and "Traceback" not in done.stderr
