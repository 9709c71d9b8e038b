"""examples/sign_decision.py, examples/sign_verify.py and examples/sign_remote.py run as
documented, as scripts: a decision signed by the official then sealed by the agency, verified by
anyone with the roots; and an official's remote signature over gRPC, the document staying with
the caller."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pyotp

from server.storage.db import Database
from tests.server.documents.test_signing_service import (
    CALLERS,
    OWNER,
    SECRET,
    documents_section,
    register_official,
)
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.support.pki import TestPki, pem
from tests.support.server import ROOT, running_server
from tests.support.softhsm import SoftHsm

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}


def example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


def test_sign_decision_then_sign_verify(doc_pki: DocumentPki, tmp_path: Path) -> None:
    tsa_root = tmp_path / "tsa-root.pem"
    tsa_root.write_bytes(doc_pki.pem("root"))
    out = tmp_path / "decision-signed.pdf"
    done = example("sign_decision.py", "--tsa", doc_pki.tsa_url, "--tsa-root", str(tsa_root),
                   "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PAdES-B-T: TOTAL-PASSED") == 2, done.stdout
    assert "Nguyễn Văn An, Chủ tịch" in done.stdout
    demo_root = tmp_path / "demo-root.pem"
    assert demo_root.exists()
    verify = ["--trust", str(demo_root), "--trust", str(tsa_root), "--no-revocation"]
    done = example("sign_verify.py", str(out), *verify, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Document (pdf)") and "Overall: TOTAL-PASSED" in done.stdout
    done = example("sign_verify.py", str(out), *verify, "--json", cwd=tmp_path)
    assert done.returncode == 0 and '"indication": "TOTAL-PASSED"' in done.stdout
    # Someone trusting only the TSA's root does not accept the demo signers...
    done = example("sign_verify.py", str(out), "--trust", str(tsa_root), "--no-revocation",
                   cwd=tmp_path)
    assert done.returncode == 1 and "NO_CERTIFICATE_CHAIN_FOUND" in done.stdout
    # ...and a changed byte fails for everyone.
    data = out.read_bytes()
    at = data.index(b"/MediaBox")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(data[:at] + b"/MediaBoy" + data[at + 9:])
    done = example("sign_verify.py", str(bad), *verify, cwd=tmp_path)
    assert done.returncode == 1 and "HASH_FAILURE" in done.stdout


async def test_sign_remote_over_grpc(pki: TestPki, tmp_path: Path, sqlite_db: Database,
                                     doc_pki: DocumentPki, softhsm: SoftHsm) -> None:
    credential_id = register_official(sqlite_db, doc_pki, softhsm)
    # The example reads the server's root and the caller's client certificate from a data
    # directory laid out as `vnegov init` makes it.
    data = tmp_path / "data"
    (data / "pki" / "clients").mkdir(parents=True)
    (data / "pki" / "root-ca.pem").write_bytes(pem(pki.root.cert))
    (data / "pki" / "clients" / "dvc-hcm.pem").write_bytes(pki.hcm.chain_pem)
    (data / "pki" / "clients" / "dvc-hcm.key.pem").write_bytes(pki.hcm.key_pem)
    document = tmp_path / "decision.pdf"
    document.write_bytes(decision_pdf())
    extra = {"documents": documents_section(doc_pki, softhsm, tmp_path / "documents"),
             "auth": {"callers": CALLERS}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra=extra) as srv:
        args = [str(document), "--signer-id", OWNER, "--data-dir", str(data),
                "--target", srv.target, "--tsa", doc_pki.tsa_url]
        code = pyotp.TOTP(SECRET).now()  # one code for both runs (a second now() may be the
        # next period's code when the first run crosses a 30-second boundary)
        done = await asyncio.to_thread(example, "sign_remote.py", *args, "--code", code,
                                       cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"credential {credential_id}: CN=Nguyễn Văn An" in done.stdout
        assert "SCAL2" in done.stdout and "(B-T, field Signature1)" in done.stdout
        signed = tmp_path / "decision-remote-signed.pdf"
        # The same code again is refused: each code authorises one signature.
        again = await asyncio.to_thread(example, "sign_remote.py", *args, "--code", code,
                                        cwd=tmp_path)
        assert again.returncode != 0
        assert "refused: UNAUTHENTICATED" in again.stderr and "Traceback" not in again.stderr
    checked = subprocess.run(["pdfsig", str(signed)], capture_output=True, text=True).stdout
    assert "Signature is Valid." in checked and "Nguyễn Văn An" in checked


async def test_sign_remote_approved_in_the_app(pki: TestPki, tmp_path: Path, db: Database,
                                               doc_pki: DocumentPki, softhsm: SoftHsm) -> None:
    from tests.server.documents.test_signing_approvals import Phone, approval_server

    data = tmp_path / "data"
    (data / "pki" / "clients").mkdir(parents=True)
    (data / "pki" / "root-ca.pem").write_bytes(pem(pki.root.cert))
    (data / "pki" / "clients" / "dvc-hcm.pem").write_bytes(pki.hcm.chain_pem)
    (data / "pki" / "clients" / "dvc-hcm.key.pem").write_bytes(pki.hcm.key_pem)
    document = tmp_path / "decision.pdf"
    document.write_bytes(decision_pdf())
    async with approval_server(pki, tmp_path, db, doc_pki, softhsm) as t:
        phone = Phone(t.an.app)

        def approve_when_asked() -> str:
            for _ in range(200):
                waiting = phone.pending()
                if waiting:
                    [item] = waiting
                    code = str(item["binding_message"]).rsplit(" ", 1)[-1]
                    r = phone.answer(code)
                    assert r.status_code == 200, r.text
                    return code
                time.sleep(0.1)
            raise AssertionError("no approval was asked")

        args = [str(document), "--signer-id", t.an.identifier, "--credential-id",
                t.an.credential_id, "--data-dir", str(data), "--target", t.srv.target,
                "--approve"]
        done, code = await asyncio.gather(
            asyncio.to_thread(example, "sign_remote.py", *args, cwd=tmp_path),
            asyncio.to_thread(approve_when_asked))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"approve in the app: Ký số 1 tài liệu, mã đối chiếu {code}" in done.stdout
        assert "(B-B, field Signature1)" in done.stdout
        # Refused in the app: the example says so, without a traceback.
        (tmp_path / "decision-remote-signed.pdf").rename(tmp_path / "first.pdf")

        def deny_when_asked() -> None:
            for _ in range(200):
                waiting = phone.pending()
                if waiting:
                    code = str(waiting[0]["binding_message"]).rsplit(" ", 1)[-1]
                    assert phone.answer(code, decision="deny").status_code == 200
                    return
                time.sleep(0.1)

        denied, _ = await asyncio.gather(
            asyncio.to_thread(example, "sign_remote.py", *args, cwd=tmp_path),
            asyncio.to_thread(deny_when_asked))
        assert denied.returncode == 1
        assert "reason: APPROVAL_DENIED" in denied.stderr and "Traceback" not in denied.stderr
        assert not (tmp_path / "decision-remote-signed.pdf").exists()
    checked = subprocess.run(["pdfsig", str(tmp_path / "first.pdf")], capture_output=True,
                             text=True).stdout
    assert "Signature is Valid." in checked and "Nguyễn Văn An" in checked


def test_sign_decision_with_a_tsa_but_no_root_says_so(doc_pki: DocumentPki,
                                                      tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "root-ca.pem"
    out = tmp_path / "decision-signed.pdf"
    done = example("sign_decision.py", "--tsa", doc_pki.tsa_url, "--tsa-root", str(missing),
                   "--out", str(out), cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot read the time-stamp authority's root {missing}" in done.stderr
    assert "--tsa-root" in done.stderr and not out.exists()
    not_pem = tmp_path / "root.pem"
    not_pem.write_text("not a certificate")
    done = example("sign_decision.py", "--tsa", doc_pki.tsa_url, "--tsa-root", str(not_pem),
                   "--out", str(out), cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "holds no PEM certificate" in done.stderr and not out.exists()
