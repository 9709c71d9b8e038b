"""examples/ca_issue.py and examples/ca_revoke.py run as documented, as scripts, against a server
started from a data directory made by `vnegov init`; a call the server refuses is reported as its
status code, message and reason, without a traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.support.server import ROOT, free_port

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}

Example = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """Run an example against a served `vnegov init` data directory."""
    tmp_path = tmp_path_factory.mktemp("examples")
    data = tmp_path / "data"
    grpc_port, http_port = free_port(), free_port()
    init = subprocess.run([sys.executable, "-m", "server", "--data-dir", str(data), "init",
                           "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert init.returncode == 0, init.stderr
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "server", "--data-dir", str(data),
                                   "serve"], env=ENV, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while b'"server started"' not in log_path.read_bytes():
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            where = ["--data-dir", str(data), "--target", f"localhost:{grpc_port}",
                     "--http", f"http://127.0.0.1:{http_port}"]

            def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args,
                                       *where], capture_output=True, text=True, env=ENV,
                                      cwd=tmp_path, timeout=60)

            yield run
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0


@pytest.mark.slow
def test_issue_then_hold_release_and_revoke_through_the_examples(example: Example,
                                                                  tmp_path: Path) -> None:
    def ok(name: str, *args: str) -> str:
        done = example(name, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    issued = ok("ca_issue.py", "--out", str(tmp_path / "an.pem"))
    assert "COMPLETED" in issued and "OCSP: good" in issued, issued
    found = re.search(r"certificate: (certificates/\d+) serial", issued)
    assert found, issued
    name = found.group(1)
    cert = x509.load_pem_x509_certificate((tmp_path / "an.pem").read_bytes())
    assert cert.subject.rfc4514_string().startswith("CN=Nguyễn Văn An")

    held = ok("ca_revoke.py", name, "--reason", "certificateHold")
    assert "status: ON_HOLD" in held and "certificate_hold" in held, held
    assert "lists it" in held and "does not" not in held
    released = ok("ca_revoke.py", name, "--release")
    assert "status: VALID" in released and "OCSP: good" in released, released
    assert "does not list it" in released
    revoked = ok("ca_revoke.py", name)
    assert "status: REVOKED" in revoked and "key_compromise" in revoked, revoked
    assert "CRL #" in revoked and "lists it" in revoked and "does not" not in revoked

    # A request the CA takes but cannot carry out: reported, exit status 1.
    again = example("ca_revoke.py", name, "--release")
    assert again.returncode == 1 and "REJECTED NOT_ON_HOLD" in again.stdout, again


@pytest.mark.slow
def test_a_refused_call_is_reported_without_a_traceback(example: Example) -> None:
    """Hà Nội's system may not act for Hồ Chí Minh City's certificates, nor certify one of its
    officials: each example says so (code, message, ErrorInfo reason) and exits non-zero."""
    refused = [example("ca_revoke.py", "certificates/1", "--client", "dvc-hanoi"),
               example("ca_revoke.py", "certificates/1", "--release", "--client", "dvc-hanoi"),
               example("ca_issue.py", "--client", "dvc-hanoi")]
    for done in refused:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert "refused: PERMISSION_DENIED: " in done.stderr, done.stderr
        assert re.search(r"^reason: [A-Z_]+", done.stderr, re.MULTILINE), done.stderr
    assert "reason: NOT_MANAGING_BODY" in refused[0].stderr, refused[0].stderr
    assert "reason: OUT_OF_JURISDICTION" in refused[2].stderr, refused[2].stderr
