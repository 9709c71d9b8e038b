"""Detached CAdES signatures for any file, checked with openssl cms -verify -binary, and validated
with EN 319 102-1 indications (including the attacks)."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
from pathlib import Path

import pytest

from server.documents.transport import HttpTimeStampTransport
from signing.sign.cms import CadesLevel, sign_detached
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, TimeSource, validate_cms
from tests.signing.sign.docpki import DocumentPki

CONTENT = "Hồ sơ đề nghị cấp giấy phép xây dựng số 0123/2025\n".encode() * 2000


def signer(pki: DocumentPki, label: str) -> KeySigner:
    cred = pki.credential(label)
    return KeySigner(cred.key, cred.cert, cred.chain)


@pytest.mark.parametrize("level", list(CadesLevel))
def test_openssl_verifies_the_detached_signature(doc_pki: DocumentPki,
                                                 tsa: HttpTimeStampTransport, tmp_path: Path,
                                                 level: CadesLevel) -> None:
    p7s = sign_detached(io.BytesIO(CONTENT), signer(doc_pki, "agency"),
                        at=dt.datetime.now(dt.UTC), level=level, timestamps=tsa)
    (tmp_path / "file.p7s").write_bytes(p7s)
    (tmp_path / "file.bin").write_bytes(CONTENT)
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))

    def verify(content: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                               str(tmp_path / "file.p7s"), "-content", str(content),
                               "-CAfile", str(tmp_path / "root.pem"), "-purpose", "any",
                               "-out", "/dev/null"], capture_output=True, text=True)

    done = verify(tmp_path / "file.bin")
    assert done.returncode == 0, done.stderr
    assert "Verification successful" in done.stderr
    (tmp_path / "other.bin").write_bytes(CONTENT[:-1] + b"?")
    assert verify(tmp_path / "other.bin").returncode != 0


@pytest.mark.parametrize("level", list(CadesLevel))
def test_validation_passes_with_identity_and_time_source(
        doc_pki: DocumentPki, tsa: HttpTimeStampTransport, trust: TrustSettings,
        level: CadesLevel) -> None:
    p7s = sign_detached(io.BytesIO(CONTENT), signer(doc_pki, "official"),
                        at=dt.datetime.now(dt.UTC), level=level, timestamps=tsa)
    report = validate_cms(p7s, io.BytesIO(CONTENT), trust=trust, at=dt.datetime.now(dt.UTC))
    [result] = report.signatures
    assert result.indication is Indication.TOTAL_PASSED, report.to_text()
    assert result.format == f"CAdES-{level.value}"
    assert result.signer is not None and result.signer.title == "Chủ tịch"
    expected = TimeSource.CLAIMED if level is CadesLevel.B_B else TimeSource.SIGNATURE_TIMESTAMP
    assert result.signing_time_source is expected


def test_changed_content_revoked_signer_and_foreign_root(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    now = dt.datetime.now(dt.UTC)
    p7s = sign_detached(io.BytesIO(CONTENT), signer(doc_pki, "official"), at=now)
    report = validate_cms(p7s, io.BytesIO(CONTENT + b"."), trust=trust, at=now)
    assert (report.indication, report.signatures[0].sub_indication) == \
        (Indication.TOTAL_FAILED, "HASH_FAILURE")
    revoked = sign_detached(io.BytesIO(CONTENT), signer(doc_pki, "revoked"), at=now)
    result = validate_cms(revoked, io.BytesIO(CONTENT), trust=trust, at=now).signatures[0]
    assert (result.indication, result.sub_indication) in {
        (Indication.TOTAL_FAILED, "REVOKED"), (Indication.INDETERMINATE, "REVOKED_NO_POE")}
    elsewhere = TrustSettings(trust_roots=[doc_pki.untrusted_root])
    result = validate_cms(p7s, io.BytesIO(CONTENT), trust=elsewhere, at=now).signatures[0]
    assert (result.indication, result.sub_indication) == \
        (Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND")


def test_the_signer_key_usage_is_checked(doc_pki: DocumentPki, trust: TrustSettings) -> None:
    """A certificate for key agreement only does not make signatures that pass; one for
    digitalSignature (without nonRepudiation) does."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from signing.ca import CertificateSpec, KeyUsages, issue_certificate

    now = dt.datetime.now(dt.UTC)

    def signed_with(usages: KeyUsages) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_certificate(CertificateSpec(
            subject=x509.Name.from_rfc4514_string("CN=Khóa thỏa thuận,C=VN"),
            not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=3),
            key_usages=usages), key.public_key(), doc_pki.key("interm"),  # type: ignore[arg-type]
            doc_pki.interm)
        return sign_detached(io.BytesIO(CONTENT), KeySigner(key, cert, [doc_pki.interm]), at=now)

    relaxed = TrustSettings(trust_roots=trust.trust_roots, require_revocation=False)
    report = validate_cms(signed_with(KeyUsages(key_agreement=True)), io.BytesIO(CONTENT),
                          trust=relaxed, at=now)
    assert (report.indication, report.signatures[0].sub_indication) == \
        (Indication.INDETERMINATE, "CHAIN_CONSTRAINTS_FAILURE"), report.to_text()
    report = validate_cms(signed_with(KeyUsages(digital_signature=True)), io.BytesIO(CONTENT),
                          trust=relaxed, at=now)
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
