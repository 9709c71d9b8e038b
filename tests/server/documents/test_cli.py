"""``vnegov sign`` and ``vnegov verify`` on files, without a server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from PIL import Image

from server.cli import main
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.signing.stamp.images import seal_png, signature_png


def files(doc_pki: DocumentPki, directory: Path, label: str) -> tuple[str, str]:
    cred = doc_pki.credential(label)
    key = directory / f"{label}.key.pem"
    key.write_bytes(cred.key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    chain = directory / f"{label}.pem"
    chain.write_bytes(doc_pki.pem(label, "interm"))
    return str(key), str(chain)


def test_official_then_agency_then_verify(doc_pki: DocumentPki, tmp_path: Path, font: bytes,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    (tmp_path / "decision.pdf").write_bytes(decision_pdf())
    (tmp_path / "an.png").write_bytes(signature_png())
    (tmp_path / "seal.png").write_bytes(seal_png())
    key, cert = files(doc_pki, tmp_path, "official")
    assert main(["sign", str(tmp_path / "decision.pdf"), "--key", key, "--cert", cert,
                 "--level", "B-T", "--tsa", doc_pki.tsa_url, "--trust", str(tmp_path / "root.pem"),
                 "--title", "CHỦ TỊCH", "--name", "Nguyễn Văn An",
                 "--signature-png", str(tmp_path / "an.png"), "--box", "330,150,530,290",
                 "--out", str(tmp_path / "one.pdf")], env) == 0
    key, cert = files(doc_pki, tmp_path, "agency")
    size = Image.open(io.BytesIO(signature_png())).size
    assert main(["sign", str(tmp_path / "one.pdf"), "--key", key, "--cert", cert,
                 "--level", "B-LTA", "--tsa", doc_pki.tsa_url,
                 "--trust", str(tmp_path / "root.pem"), "--seal-png", str(tmp_path / "seal.png"),
                 "--person-box", "330,150,530,290", "--signature-size", f"{size[0]}x{size[1]}",
                 "--out", str(tmp_path / "two.pdf")], env) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "two.pdf"), "--trust", str(tmp_path / "root.pem")],
                env) == 0
    out = capsys.readouterr().out
    assert out.count("TOTAL-PASSED") == 3  # overall and both signatures
    assert "Nguyễn Văn An, Chủ tịch" in out and "PAdES-B-LTA" in out
    data = (tmp_path / "two.pdf").read_bytes()
    at = data.index(b"/MediaBox")
    (tmp_path / "bad.pdf").write_bytes(data[:at] + b"/MediaBoy" + data[at + 9:])
    assert main(["verify", str(tmp_path / "bad.pdf"), "--trust", str(tmp_path / "root.pem"),
                 "--json"], env) == 1
    assert '"TOTAL-FAILED"' in capsys.readouterr().out


def test_cms_and_xml(doc_pki: DocumentPki, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    key, cert = files(doc_pki, tmp_path, "agency")
    (tmp_path / "hoso.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 100)
    assert main(["sign", str(tmp_path / "hoso.zip"), "--key", key, "--cert", cert], env) == 0
    assert (tmp_path / "hoso.zip.p7s").exists()
    assert main(["verify", str(tmp_path / "hoso.zip"), "--signature",
                 str(tmp_path / "hoso.zip.p7s"), "--trust", str(tmp_path / "root.pem")], env) == 0
    (tmp_path / "r.xml").write_bytes(b'<BLai><DLBLai Id="D"><A>1</A></DLBLai></BLai>')
    assert main(["sign", str(tmp_path / "r.xml"), "--key", key, "--cert", cert,
                 "--reference-id", "D", "--signature-id", "NBan"], env) == 0
    assert main(["verify", str(tmp_path / "r-signed.xml"), "--trust",
                 str(tmp_path / "root.pem")], env) == 0
    assert "XMLDSig: TOTAL-PASSED" in capsys.readouterr().out
