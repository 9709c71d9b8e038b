"""PAdES B-B, B-T, B-LT and B-LTA, checked by tools nobody here wrote: poppler's pdfsig (NSS trust
store holding our root), pyHanko's own AdES validator offline, OpenSSL on the CMS that pdfsig dumps,
and qpdf."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from server.documents.transport import HttpTimeStampTransport
from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, SubjectInfo, issue_certificate
from signing.pkcs11 import Token, TokenConfig
from signing.sign.errors import RevocationUnavailable, TimestampUnavailable
from signing.sign.pades import DocMdp, PadesLevel, PadesOptions, SignedPdf, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner, Signer, TokenSigner
from signing.validate import Indication, TimeSource, validate_pdf
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.support.softhsm import USER_PIN, SoftHsm

PYHANKO = str(Path(sys.executable).parent / "pyhanko")


def signer(pki: DocumentPki, label: str) -> KeySigner:
    cred = pki.credential(label)
    return KeySigner(cred.key, cred.cert, cred.chain)


def sign(data: bytes, who: Signer, *, level: PadesLevel = PadesLevel.B_B,
         tsa: HttpTimeStampTransport | None = None, trust: TrustSettings | None = None,
         **options: object) -> tuple[bytes, SignedPdf]:
    out = io.BytesIO()
    result = sign_pdf(io.BytesIO(data), out, who, at=dt.datetime.now(dt.UTC),
                      options=PadesOptions(level=level, **options),  # type: ignore[arg-type]
                      timestamps=tsa, trust=trust)
    return out.getvalue(), result


@pytest.fixture(scope="module")
def signed(doc_pki: DocumentPki, tsa: HttpTimeStampTransport, trust: TrustSettings,
           tmp_path_factory: pytest.TempPathFactory) -> dict[PadesLevel, Path]:
    directory = tmp_path_factory.mktemp("pades")
    files = {}
    for level in PadesLevel:
        data, _ = sign(decision_pdf(), signer(doc_pki, "official"), level=level, tsa=tsa,
                       trust=trust, reason="Ký ban hành", location="TP. Hồ Chí Minh")
        path = directory / f"{level.value}.pdf"
        path.write_bytes(data)
        files[level] = path
    return files


def first_signature_block(pdfsig_output: str) -> str:
    return pdfsig_output.split("Signature #2:")[0]


@pytest.mark.parametrize("level", list(PadesLevel))
def test_pdfsig_says_valid_and_trusted(signed: dict[PadesLevel, Path], nssdb: str,
                                       level: PadesLevel) -> None:
    done = subprocess.run(["pdfsig", "-nssdir", nssdb, str(signed[level])],
                          capture_output=True, text=True)
    block = first_signature_block(done.stdout)
    assert "Signature is Valid." in block, done.stdout + done.stderr
    assert "Certificate is Trusted." in block, done.stdout
    assert "ETSI.CAdES.detached" in block
    assert "Nguyễn Văn An" in block


def test_pdfsig_does_not_trust_a_store_without_our_root(signed: dict[PadesLevel, Path],
                                                        tmp_path: Path) -> None:
    subprocess.run(["certutil", "-N", "-d", f"sql:{tmp_path}", "--empty-password"],
                   check=True, capture_output=True)
    done = subprocess.run(["pdfsig", "-nssdir", f"sql:{tmp_path}",
                           str(signed[PadesLevel.B_B])], capture_output=True, text=True)
    assert "Signature is Valid." in done.stdout
    assert "Certificate is Trusted." not in done.stdout


@pytest.mark.parametrize("level", list(PadesLevel))
def test_cms_dumped_by_pdfsig_verifies_with_openssl_over_the_byte_ranges(
        signed: dict[PadesLevel, Path], doc_pki: DocumentPki, tmp_path: Path,
        level: PadesLevel) -> None:
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(signed[level].read_bytes())
    subprocess.run(["pdfsig", "-dump", str(pdf)], cwd=tmp_path, check=True, capture_output=True)
    sig0 = tmp_path / "signed.pdf.sig0"
    assert sig0.exists()
    data = pdf.read_bytes()
    match = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data)
    assert match is not None
    a, b, c, d = (int(g) for g in match.groups())
    content = tmp_path / "signed.bin"
    content.write_bytes(data[a:a + b] + data[c:c + d])
    root = tmp_path / "root.pem"
    root.write_bytes(doc_pki.pem("root"))
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(sig0), "-content", str(content), "-CAfile", str(root),
                           "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Verification successful" in done.stderr
    content.write_bytes(data[a:a + b] + data[c:c + d - 1] + b"X")
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(sig0), "-content", str(content), "-CAfile", str(root),
                           "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert done.returncode != 0


@pytest.mark.parametrize("level", list(PadesLevel))
def test_qpdf_finds_no_damage(signed: dict[PadesLevel, Path], level: PadesLevel) -> None:
    done = subprocess.run(["qpdf", "--check", str(signed[level])], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No syntax or stream encoding errors found" in done.stdout


@pytest.mark.slow
def test_pyhanko_adesverify_offline_from_embedded_data(
        signed: dict[PadesLevel, Path], doc_pki: DocumentPki, tmp_path: Path) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(doc_pki.pem("root"))

    def adesverify(level: PadesLevel) -> subprocess.CompletedProcess[str]:
        # --validation-time makes pyHanko validate "historically": from local data only, no
        # fetching (with fetching allowed, a failed fetch hides the embedded data). A fresh
        # cache directory keeps the CLI's own revocation cache out of it.
        at = dt.datetime.now(dt.UTC).isoformat()
        return subprocess.run([PYHANKO, "sign", "adesverify", "--validation-time", at,
                               "--trust", str(root), "--trust-replace", "--executive-summary",
                               str(signed[level])], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
                                   "HOME": str(tmp_path)})

    with doc_pki.offline():
        for level in (PadesLevel.B_LT, PadesLevel.B_LTA):
            done = adesverify(level)
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout.strip().endswith(":VALID"), done.stdout
        # Without embedded revocation data the same check cannot succeed offline: the data
        # really comes from the document.
        done = adesverify(PadesLevel.B_T)
        assert not done.stdout.strip().endswith(":VALID")


@pytest.mark.parametrize("level", list(PadesLevel))
def test_our_validator_passes_each_level_with_identity_and_time(
        signed: dict[PadesLevel, Path], trust: TrustSettings, level: PadesLevel) -> None:
    with signed[level].open("rb") as f:
        report = validate_pdf(f, trust=trust, at=dt.datetime.now(dt.UTC))
    [result] = report.signatures
    assert result.indication is Indication.TOTAL_PASSED, report.to_text()
    assert result.format == f"PAdES-{level.value}"
    assert result.signer is not None
    assert (result.signer.name, result.signer.title, result.signer.agency_code) == \
        ("Nguyễn Văn An", "Chủ tịch", AGENCY_CODE)
    expected = TimeSource.CLAIMED if level is PadesLevel.B_B else TimeSource.SIGNATURE_TIMESTAMP
    assert result.signing_time_source is expected
    assert result.signing_time is not None
    assert report.etsi_xml_reports and "ValidationReport" in report.etsi_xml_reports[0]


def test_lt_validates_offline_with_our_validator(
        signed: dict[PadesLevel, Path], doc_pki: DocumentPki) -> None:
    offline = TrustSettings(trust_roots=[doc_pki.root], allow_fetching=False)
    with doc_pki.offline():
        for level in (PadesLevel.B_LT, PadesLevel.B_LTA):
            with signed[level].open("rb") as f:
                report = validate_pdf(f, trust=offline, at=dt.datetime.now(dt.UTC))
            assert report.indication is Indication.TOTAL_PASSED, report.to_text()


def test_lt_fails_closed_naming_the_certificate_without_revocation_data(
        doc_pki: DocumentPki, tsa: HttpTimeStampTransport, trust: TrustSettings) -> None:
    out = io.BytesIO()
    with pytest.raises(RevocationUnavailable) as caught:
        sign_pdf(io.BytesIO(decision_pdf()), out, signer(doc_pki, "orphan"),
                 at=dt.datetime.now(dt.UTC), options=PadesOptions(level=PadesLevel.B_LT),
                 timestamps=tsa, trust=trust)
    assert "Không có OCSP" in caught.value.metadata["certificate"]
    assert "Không có OCSP" in caught.value.message
    assert out.getvalue() == b""


def test_lt_fails_closed_when_the_responders_are_down(
        doc_pki: DocumentPki, tsa: HttpTimeStampTransport) -> None:
    quick = TrustSettings(trust_roots=[doc_pki.root], fetch_timeout=2)
    with doc_pki.offline(), pytest.raises((RevocationUnavailable, TimestampUnavailable)):
        sign_pdf(io.BytesIO(decision_pdf()), io.BytesIO(), signer(doc_pki, "official"),
                 at=dt.datetime.now(dt.UTC), options=PadesOptions(level=PadesLevel.B_LTA),
                 timestamps=tsa, trust=quick)


def test_unreachable_tsa_is_a_clear_error(doc_pki: DocumentPki) -> None:
    dead = HttpTimeStampTransport("http://127.0.0.1:9/tsa", timeout=2)
    with pytest.raises(TimestampUnavailable):
        sign(decision_pdf(), signer(doc_pki, "official"), level=PadesLevel.B_T, tsa=dead)


def test_three_sequential_signers_all_verify(doc_pki: DocumentPki, tsa: HttpTimeStampTransport,
                                             trust: TrustSettings, nssdb: str,
                                             tmp_path: Path) -> None:
    data = decision_pdf()
    for label in ("clerk", "deputy", "official"):
        data, result = sign(data, signer(doc_pki, label), level=PadesLevel.B_T, tsa=tsa)
    assert result.field_name == "Signature3"
    report = validate_pdf(io.BytesIO(data), trust=trust, at=dt.datetime.now(dt.UTC))
    assert [s.signer.name for s in report.signatures if s.signer] == \
        ["Lê Văn Cường", "Trần Thị Bình", "Nguyễn Văn An"]
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    path = tmp_path / "three.pdf"
    path.write_bytes(data)
    done = subprocess.run(["pdfsig", "-nssdir", nssdb, str(path)],
                          capture_output=True, text=True)
    assert done.stdout.count("Signature is Valid.") == 3, done.stdout
    assert done.stdout.count("Certificate is Trusted.") == 3


def test_earlier_b_b_and_b_t_signatures_stay_valid_under_a_later_b_lta(
        doc_pki: DocumentPki, tsa: HttpTimeStampTransport, trust: TrustSettings, nssdb: str,
        tmp_path: Path) -> None:
    """The usual official-then-agency flow: the official signs without long-term data, the
    agency seals at B-LTA; the document time-stamp must not turn the earlier signatures
    INDETERMINATE (pyHanko's long-term process wants a signature time-stamp). The agency's
    validation data and time-stamps raise the earlier ones to the level present: the B-B
    signature is time-stamped by the document time-stamp (B-LT), the B-T one gets B-LTA."""
    data = decision_pdf()
    for label, level in (("clerk", PadesLevel.B_B), ("deputy", PadesLevel.B_T),
                         ("agency", PadesLevel.B_LTA)):
        data, _ = sign(data, signer(doc_pki, label), level=level, tsa=tsa, trust=trust)
    report = validate_pdf(io.BytesIO(data), trust=trust, at=dt.datetime.now(dt.UTC))
    assert [(s.format, s.indication) for s in report.signatures] == [
        ("PAdES-B-LT", Indication.TOTAL_PASSED), ("PAdES-B-LTA", Indication.TOTAL_PASSED),
        ("PAdES-B-LTA", Indication.TOTAL_PASSED)], report.to_text()
    assert report.indication is Indication.TOTAL_PASSED
    path = tmp_path / "mixed.pdf"
    path.write_bytes(data)
    done = subprocess.run(["pdfsig", "-nssdir", nssdb, str(path)],
                          capture_output=True, text=True)
    blocks = done.stdout.split("Signature #")[1:4]  # the fourth is the document time-stamp
    assert len(blocks) == 3, done.stdout
    for block in blocks:
        assert "Signature is Valid." in block and "Certificate is Trusted." in block, done.stdout


def test_certification_with_p1_warns_and_p2_lets_a_later_signer_in(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    _, result = sign(decision_pdf(), signer(doc_pki, "agency"), certify=DocMdp.NO_CHANGES)
    assert any("P=1" in w for w in result.warnings)
    certified, result = sign(decision_pdf(), signer(doc_pki, "agency"),
                             certify=DocMdp.FILL_FORMS_AND_SIGN)
    assert result.warnings == ()
    both, _ = sign(certified, signer(doc_pki, "official"))
    report = validate_pdf(io.BytesIO(both), trust=trust, at=dt.datetime.now(dt.UTC))
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()


def test_softhsm_token_signature(doc_pki: DocumentPki, softhsm: SoftHsm, nssdb: str,
                                 tmp_path: Path) -> None:
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    label = softhsm.unique_label("pades")
    key = token.generate_key(label, KeyAlgorithm.EC_P256)
    now = dt.datetime.now(dt.UTC)
    cert = issue_certificate(CertificateSpec(
        subject=x509.Name.from_rfc4514_string("CN=Phạm Thị Token,O=UBND Thành phố Hồ Chí Minh,C=VN"),
        not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code=AGENCY_CODE)),
        key.public_key(), doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
    token_signer = TokenSigner(token, label, cert, [doc_pki.interm])
    assert "ECDSA" in token_signer.mechanisms and "ECDSA_SHA256" not in token_signer.mechanisms
    data, _ = sign(decision_pdf(), token_signer)
    path = tmp_path / "token.pdf"
    path.write_bytes(data)
    done = subprocess.run(["pdfsig", "-nssdir", nssdb, str(path)],
                          capture_output=True, text=True)
    assert "Signature is Valid." in done.stdout and "Certificate is Trusted." in done.stdout
    assert "Phạm Thị Token" in done.stdout
