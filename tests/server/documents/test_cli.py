"""``vnegov sign`` and ``vnegov verify`` on files, without a server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives import serialization
from PIL import Image

from server.cli import main
from server.storage.db import Database
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.signing.stamp.images import seal_png, signature_png
from tests.support.pki import TestPki
from tests.support.server import server_config_dict
from tests.support.softhsm import USER_PIN, SoftHsm


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


def landscape_pdf() -> bytes:
    """An A4 landscape page (842 x 595 pt) whose size is inherited from the page tree."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()  # type: ignore[no-untyped-call]
    writer.insert_page(generic.DictionaryObject({  # type: ignore[no-untyped-call]
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/Contents"): writer.add_object(generic.StreamObject(
            stream_data=b"BT /F1 12 Tf 60 500 Td (Quyet dinh) Tj ET")),
        generic.NameObject("/Resources"): generic.DictionaryObject()}))  # type: ignore[no-untyped-call]
    writer.root["/Pages"]["/MediaBox"] = generic.ArrayObject(
        [generic.NumberObject(x) for x in (0, 0, 842, 595)])  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def test_electronic_copy_lands_top_right_of_any_page_size(
        doc_pki: DocumentPki, tmp_path: Path, font: bytes) -> None:
    import re
    import subprocess

    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    key, cert = files(doc_pki, tmp_path, "agency")
    (tmp_path / "wide.pdf").write_bytes(landscape_pdf())
    assert main(["sign", str(tmp_path / "wide.pdf"), "--key", key, "--cert", cert,
                 "--copy-of", "Văn phòng UBND Thành phố Hồ Chí Minh",
                 "--out", str(tmp_path / "copy.pdf")], env) == 0
    bbox = subprocess.run(["pdftotext", "-bbox", str(tmp_path / "copy.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert 'width="842.000000" height="595.000000"' in bbox
    found = re.search(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">'
                      r'Bản sao điện tử', bbox)
    assert found is not None, bbox
    x1, y1, x2 = (float(v) for v in found.groups())
    assert x1 > 842 / 2 and x2 <= 842 and 0 <= y1 < 595 / 6  # top right of this page


def test_errors_are_messages_and_leave_no_file(doc_pki: DocumentPki, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    (tmp_path / "decision.pdf").write_bytes(decision_pdf())
    key, cert = files(doc_pki, tmp_path, "agency")
    assert main(["verify", str(tmp_path / "missing.pdf"), "--trust",
                 str(tmp_path / "root.pem")], env) == 2
    assert "missing.pdf" in capsys.readouterr().err
    assert main(["sign", str(tmp_path / "missing.pdf"), "--key", key, "--cert", cert], env) == 2
    assert "missing.pdf" in capsys.readouterr().err
    assert not (tmp_path / "missing-signed.pdf").exists()
    assert main(["sign", str(tmp_path / "decision.pdf"), "--format", "cms", "--level", "B-LT",
                 "--key", key, "--cert", cert], env) == 2
    assert capsys.readouterr().err == "vnegov: detached CMS signatures are B-B or B-T [USAGE]\n"
    # LT fails closed for a signer without revocation data: nothing is written
    key, cert = files(doc_pki, tmp_path, "orphan")
    assert main(["sign", str(tmp_path / "decision.pdf"), "--key", key, "--cert", cert,
                 "--level", "B-LT", "--tsa", doc_pki.tsa_url,
                 "--trust", str(tmp_path / "root.pem")], env) == 3  # UNAVAILABLE, as over gRPC
    assert "Không có OCSP" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("decision*")) == ["decision.pdf"]


def test_credential_linked_to_the_owners_identity_account(
        pki: TestPki, doc_pki: DocumentPki, softhsm: SoftHsm, tmp_path: Path,
        sqlite_db: Database, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from cryptography import x509
    from sqlalchemy import select

    from server.storage.documents import SigningCredentialRow
    from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, SubjectInfo, issue_certificate
    from signing.pkcs11 import Token, TokenConfig

    (tmp_path / "pin").write_text(USER_PIN)
    data = server_config_dict(pki, tmp_path, sqlite_db.url.render_as_string(False), extra={
        "identity": {"argon2_time_cost": 1, "argon2_memory_kib": 1024,
                     "argon2_parallelism": 1},
        "documents": {"token_module": softhsm.module, "token_label": softhsm.token_label,
                      "token_pin_file": str(tmp_path / "pin")}})
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps(data), encoding="utf-8")

    def run(*argv: str) -> tuple[int, str]:
        code = main(["--config", str(config), *argv], environ={})
        out = capsys.readouterr()
        return code, out.out + out.err

    # The official's key is in the token; its certificate from the CA.
    label = softhsm.unique_label("an")
    key = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN)).generate_key(
        label, KeyAlgorithm.EC_P256)
    now = dt.datetime.now(dt.UTC)
    issued = issue_certificate(CertificateSpec(
        subject=x509.Name.from_rfc4514_string("CN=Nguyễn Văn An,O=UBND Thành phố Hồ Chí Minh,C=VN"),
        not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code="000.00.00.H29", personal_id="079084000123")),
        key.public_key(), doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
    cert = str(tmp_path / "an-chain.pem")
    Path(cert).write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                    for c in (issued, doc_pki.interm)))
    # A label the token does not hold, or another key's certificate: refused, nothing stored.
    code, out = run("documents", "credential-add", "--credential-id", "an-2025", "--owner",
                    "079084000123", "--agency-code", "000.00.00.H29", "--key-label",
                    "not-in-the-token", "--cert-file", cert)
    assert code == 2 and "[TOKEN_KEY_NOT_FOUND]" in out, out
    _, other = files(doc_pki, tmp_path, "official")
    code, out = run("documents", "credential-add", "--credential-id", "an-2025", "--owner",
                    "079084000123", "--agency-code", "000.00.00.H29", "--key-label", label,
                    "--cert-file", other)
    assert code == 2 and "[SIGNER_KEY_MISMATCH]" in out, out
    with sqlite_db.read() as s:
        assert s.execute(select(SigningCredentialRow)).first() is None
    assert run("documents", "credential-add", "--credential-id", "an-2025", "--owner",
               "079084000123", "--agency-code", "000.00.00.H29", "--key-label", label,
               "--cert-file", cert)[0] == 0
    code, out = run("documents", "credential-link", "--credential-id", "an-2025")
    assert code == 2 and "no identity account" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("Mot-mat-khau-du-dai-2025\n"))
    code, out = run("identity", "account", "create", "--kind", "citizen", "--identifier",
                    "079084000123", "--name", "Nguyễn Văn An", "--born", "1984-05-17",
                    "--sex", "male", "--province", "79", "--password-stdin")
    assert code == 0, out
    account = out.strip()
    code, out = run("documents", "credential-link", "--credential-id", "an-2025")
    assert code == 0 and account in out
    with sqlite_db.read() as s:
        linked = s.execute(select(SigningCredentialRow.identity_account).where(
            SigningCredentialRow.credential_id == "an-2025")).scalar()
    assert linked == account
    code, out = run("documents", "credential-link", "--credential-id", "nope",
                    "--identity-account", account)
    assert code == 2 and "CREDENTIAL_NOT_FOUND" in out


def test_verify_with_the_responders_down_says_try_later(
        doc_pki: DocumentPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    (tmp_path / "decision.pdf").write_bytes(decision_pdf())
    key, cert = files(doc_pki, tmp_path, "official")
    assert main(["sign", str(tmp_path / "decision.pdf"), "--key", key, "--cert", cert,
                 "--out", str(tmp_path / "signed.pdf")], env) == 0
    capsys.readouterr()
    with doc_pki.offline():
        code = main(["verify", str(tmp_path / "signed.pdf"), "--trust",
                     str(tmp_path / "root.pem")], env)
    out = capsys.readouterr().out
    assert code == 3  # unavailable: try again later
    assert "INDETERMINATE / TRY_LATER" in out and "CERTIFICATE_CHAIN_GENERAL_FAILURE" not in out


def test_ltv_status_extend_and_verify_two_years_later(doc_pki: DocumentPki, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A B-LTA document whose TSA certificate expires tomorrow: `ltv status` lists it, `ltv
    extend` renews it, and `verify --at` two years later passes from the embedded data only;
    the copy that was not renewed is INDETERMINATE then."""
    import datetime as dt
    import shutil

    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    root = tmp_path / "root.pem"
    root.write_bytes(doc_pki.pem("root"))
    archive = tmp_path / "archive" / "2026"
    archive.mkdir(parents=True)
    (tmp_path / "decision.pdf").write_bytes(decision_pdf())
    key, cert = files(doc_pki, tmp_path, "official")
    assert main(["sign", str(tmp_path / "decision.pdf"), "--key", key, "--cert", cert,
                 "--level", "B-LTA", "--tsa", doc_pki.short_tsa_url, "--trust", str(root),
                 "--out", str(archive / "qd-123.pdf")], env) == 0
    shutil.copy(archive / "qd-123.pdf", tmp_path / "not-renewed.pdf")
    (archive / "notes.txt").write_text("not a PDF")
    capsys.readouterr()
    assert main(["ltv", "status", str(tmp_path / "archive"), "--within", "30", "--quiet"],
                env) == 1
    out = capsys.readouterr().out
    assert "expiring" in out and "qd-123.pdf" in out
    assert main(["ltv", "extend", str(archive / "qd-123.pdf"), "--tsa", doc_pki.tsa_url,
                 "--trust", str(root)], env) == 0
    assert "extended" in capsys.readouterr().out
    code = main(["ltv", "status", str(tmp_path / "archive"), "--within", "30", "--quiet"], env)
    assert code == 0, capsys.readouterr()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=730)).isoformat()
    capsys.readouterr()
    assert main(["verify", str(archive / "qd-123.pdf"), "--trust", str(root), "--offline",
                 "--at", later], env) == 0
    assert "TOTAL-PASSED" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "not-renewed.pdf"), "--trust", str(root),
                 "--offline", "--at", later], env) == 1
    assert "OUT_OF_BOUNDS_NO_POE" in capsys.readouterr().out
    # the document as the official signed it
    assert main(["verify", str(archive / "qd-123.pdf"), "--signed-revision", "1", "-o",
                 str(tmp_path / "as-signed.pdf")], env) == 0
    signed = (tmp_path / "as-signed.pdf").read_bytes()
    assert (archive / "qd-123.pdf").read_bytes().startswith(signed)
    assert main(["verify", str(archive / "qd-123.pdf"), "--signed-revision", "5", "-o",
                 str(tmp_path / "none.pdf")], env) == 2
    assert "NO_SUCH_SIGNATURE" in capsys.readouterr().err
    assert not (tmp_path / "none.pdf").exists()
