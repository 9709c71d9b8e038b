"""The TLS front follows Mozilla's "intermediate" profile, as judged by sslyze (a scanner nobody
here wrote), run from its own environment (.venv-tools/sslyze, made by scripts/dev.sh: sslyze pins
a cryptography older than the project's)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from server.storage.db import Database
from tests.support.pki import TestPki
from tests.support.server import ROOT, running_server

SSLYZE = Path(os.environ.get("VNEGOV_SSLYZE", ROOT / ".venv-tools" / "sslyze" / "bin" / "sslyze"))

pytestmark = pytest.mark.slow


def _sslyze() -> Path:
    if not SSLYZE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"sslyze is not installed at {SSLYZE} (scripts/dev.sh installs it)")
        pytest.skip(f"sslyze is not installed at {SSLYZE} (run scripts/dev.sh test)")
    return SSLYZE


async def test_sslyze_finds_no_legacy_protocol_and_no_cbc_suite(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    tool = _sslyze()
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        out = tmp_path / "scan.json"
        proc = await asyncio.create_subprocess_exec(
            str(tool), "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3",
            "--elliptic_curves", "--json_out", str(out), f"127.0.0.1:{srv.app.grpc_port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        text, _ = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, text.decode(errors="replace")[-2000:]
    scan = json.loads(out.read_text())
    [result] = scan["server_scan_results"]
    assert result["scan_status"] == "COMPLETED", result
    found = result["scan_result"]

    def accepted(command: str) -> list[str]:
        attempt = found[command]
        assert attempt["status"] == "COMPLETED", attempt
        return [s["cipher_suite"]["name"] for s in attempt["result"]["accepted_cipher_suites"]]

    for legacy in ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites",
                   "tls_1_1_cipher_suites"):
        assert accepted(legacy) == [], legacy
    tls12 = accepted("tls_1_2_cipher_suites")
    tls13 = accepted("tls_1_3_cipher_suites")
    assert tls12 and tls13
    for suite in tls12 + tls13:
        assert "GCM" in suite or "CHACHA20_POLY1305" in suite, suite
        assert "CBC" not in suite and "RSA_WITH" not in suite, suite
    assert all(s.startswith("TLS_ECDHE_") for s in tls12), tls12
