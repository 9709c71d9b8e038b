"""``vnegov receipts verify FILE``: a good receipt verifies offline and with revocation; a receipt
re-sealed by another agency and one with a comment in its amount are judged on the signed data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from payments.receipts import build_receipt_xml, sign_document
from server.cli import main
from signing.sign import XmlDsigSigner
from tests.payments.support import HCM, T0, WARD, signers
from tests.payments.test_receipt_verification import RECEIPT
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.fixtures import doc_pki  # noqa: F401 - fixture
from tests.support.pki import TestPki, pem


def run(args: list[str], tmp_path: Path) -> int:
    return main(["receipts", "verify", *args], {"VNEGOV_DATA_DIR": str(tmp_path / "none")})


def test_verify_offline(pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "root.pem").write_bytes(pem(pki.root.cert))
    trust = ["--trust", str(tmp_path / "root.pem"), "--offline"]
    good = sign_document(signers(pki).signer_for(HCM), build_receipt_xml(RECEIPT),
                         signing_time=T0)
    (tmp_path / "good.xml").write_bytes(good.replace(b"<STien>100000",
                                                     b"<STien>100<!---->000"))
    assert run([str(tmp_path / "good.xml"), *trust], tmp_path) == 0
    out = capsys.readouterr().out
    assert "VERIFIED: receipt EBL01 25T 0000001" in out
    assert "Total: 100.000 ₫" in out and "agency code 000.00.00.H29" in out

    resealed = sign_document(signers(pki).signer_for(WARD), build_receipt_xml(RECEIPT),
                             signing_time=T0)
    (tmp_path / "resealed.xml").write_bytes(resealed)
    assert run([str(tmp_path / "resealed.xml"), *trust, "--json"], tmp_path) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["verified"], result["reason"]) == (False, "SIGNER_NOT_EXPECTED")

    assert run([str(tmp_path / "missing.xml"), *trust], tmp_path) == 2
    assert run([str(tmp_path / "good.xml")], tmp_path) == 2  # no trust anchors
    assert "no trust anchors" in capsys.readouterr().err


def test_verify_with_revocation(doc_pki: DocumentPki, tmp_path: Path,  # noqa: F811
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    cred = doc_pki.credential("agency")
    now = dt.datetime.now(dt.UTC)
    doc = sign_document(XmlDsigSigner(cred.key, [cred.cert, *cred.chain]),
                        build_receipt_xml(dataclasses.replace(RECEIPT, issued_at=now)),
                        signing_time=now)
    (tmp_path / "r.xml").write_bytes(doc)
    assert run([str(tmp_path / "r.xml"), "--trust", str(tmp_path / "root.pem"), "--json"],
               tmp_path) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["verified"], result["total"], result["signed_path"]) == (True, 100000, "/")
