"""``vnegov verify`` on XML: an expected signer, and the signed data written out for reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main
from tests.server.documents.test_cli import files
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki


def test_expected_signer_and_signed_data(doc_pki: DocumentPki, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    key, cert = files(doc_pki, tmp_path, "agency")
    (tmp_path / "r.xml").write_bytes(b'<BLai><DLBLai Id="D"><A>1</A></DLBLai></BLai>')
    assert main(["sign", str(tmp_path / "r.xml"), "--key", key, "--cert", cert,
                 "--reference-id", "D", "--signature-id", "NBan"], env) == 0
    signed = str(tmp_path / "r-signed.xml")
    trust = ["--trust", str(tmp_path / "root.pem")]
    capsys.readouterr()
    assert main(["verify", signed, *trust, "--expect-agency", AGENCY_CODE,
                 "--signed-data", str(tmp_path / "data.xml")], env) == 0
    out = capsys.readouterr().out
    assert "Signed element: /BLai/DLBLai (Id D)" in out
    assert (tmp_path / "data.xml").read_bytes() == b'<DLBLai Id="D"><A>1</A></DLBLai>'
    assert main(["verify", signed, *trust, "--expect-agency", "000.00.00.H26"], env) == 1
    out = capsys.readouterr().out
    assert "TOTAL-FAILED / SIGNER_NOT_EXPECTED" in out
    assert f"agency code is {AGENCY_CODE}, not 000.00.00.H26" in out
    assert main(["verify", signed, *trust, "--expect-tax-code", "12"], env) == 2
    assert "tax code" in capsys.readouterr().err
