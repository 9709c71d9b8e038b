"""Long-term validation at later dates (EN 319 102-1 §5.6): the validation time moves, the
documents stay as they were signed, and the validator must not touch the network (every
``connect`` fails and is counted while validating).

The test PKI's official certificate lives 700 days; the short TSA's certificate expires a
day after the PKI was made; the ``revoked-later`` signer is revoked ten days after it."""

from __future__ import annotations

import datetime as dt
import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from server.documents.transport import HttpTimeStampTransport
from signing.sign.ltv import archive_status, extend_ltv
from signing.sign.pades import PadesLevel, PadesOptions, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, ValidationReport, validate_pdf
from tests.signing.sign.docpki import REVOKED_LATER_AFTER, SHORT_TSA_LIFETIME, DocumentPki
from tests.signing.sign.pdfs import decision_pdf

DAY = dt.timedelta(days=1)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every outgoing connection fails, and is recorded."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


@pytest.fixture(scope="module")
def documents(doc_pki: DocumentPki, tsa: HttpTimeStampTransport,
              trust: TrustSettings) -> dict[str, bytes]:
    short = HttpTimeStampTransport(doc_pki.short_tsa_url)

    def sign(data: bytes, label: str, level: PadesLevel,
             stamps: HttpTimeStampTransport = tsa) -> bytes:
        cred = doc_pki.credential(label)
        out = io.BytesIO()
        sign_pdf(io.BytesIO(data), out, KeySigner(cred.key, cred.cert, cred.chain),
                 at=dt.datetime.now(dt.UTC), options=PadesOptions(level=level),
                 timestamps=stamps, trust=trust)
        return out.getvalue()

    docs = {
        "B-LT": sign(decision_pdf(), "official", PadesLevel.B_LT),
        "B-LTA": sign(decision_pdf(), "official", PadesLevel.B_LTA),
        "short B-LT": sign(decision_pdf(), "official", PadesLevel.B_LT, short),
        "short B-LTA": sign(decision_pdf(), "official", PadesLevel.B_LTA, short),
        "revoked later": sign(decision_pdf(), "revoked-later", PadesLevel.B_LT),
        # signed (and time-stamped) after the certificate was revoked / expired; the agency's
        # seal then brings the validation data
        "revoked before": sign(sign(decision_pdf(), "revoked", PadesLevel.B_T), "agency",
                               PadesLevel.B_LTA),
        "expired before": sign(sign(decision_pdf(), "expired", PadesLevel.B_T), "agency",
                               PadesLevel.B_LTA),
    }
    renewed = io.BytesIO()
    extension = extend_ltv(io.BytesIO(docs["short B-LTA"]), renewed, timestamps=tsa,
                           trust=trust, at=dt.datetime.now(dt.UTC))
    assert extension.valid_until > doc_pki.now + dt.timedelta(days=3000)
    docs["short B-LTA renewed"] = renewed.getvalue()
    short.close()
    return docs


def validate(data: bytes, at: dt.datetime, trust: TrustSettings | None = None,
             *, pki: DocumentPki) -> ValidationReport:
    return validate_pdf(io.BytesIO(data), at=at,
                        trust=trust or TrustSettings(trust_roots=[pki.root]))


@pytest.mark.parametrize("later", [DAY, 365 * DAY], ids=["+1 day", "+1 year"])
@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_long_term_signatures_pass_later_offline(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any],
        level: str, later: dt.timedelta) -> None:
    report = validate(documents[level], doc_pki.now + later, pki=doc_pki)
    [sig] = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, report.to_text()
    assert sig.format == f"PAdES-{level}"  # the level present, not B-B
    assert sig.signing_time_source.value == "signature-timestamp"
    assert no_network == []


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_signer_certificate_expired_after_the_time_stamp(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any],
        level: str) -> None:
    expiry = doc_pki.cert("official").not_valid_after_utc
    report = validate(documents[level], expiry + DAY, pki=doc_pki)
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    assert no_network == []


def test_time_stamp_made_after_the_signer_expired_is_not_passed(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any]) -> None:
    report = validate(documents["expired before"], doc_pki.now + DAY, pki=doc_pki)
    first = report.signatures[0]
    assert first.indication is not Indication.TOTAL_PASSED, report.to_text()
    assert first.sub_indication in {"OUT_OF_BOUNDS_NO_POE", "EXPIRED",
                                    "OUT_OF_BOUNDS_NOT_REVOKED"}, report.to_text()
    assert report.signatures[1].indication is Indication.TOTAL_PASSED  # the agency's seal
    assert no_network == []


def test_revoked_after_the_time_stamp_passes_and_shows_the_revocation(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any]) -> None:
    at = doc_pki.now + 45 * DAY
    with_crl = TrustSettings(trust_roots=[doc_pki.root], crls=[doc_pki.crl("interm", at)])
    report = validate(documents["revoked later"], at, with_crl, pki=doc_pki)
    [sig] = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, report.to_text()
    assert sig.revoked_at == doc_pki.now + REVOKED_LATER_AFTER
    assert "Certificate revoked" in report.to_text()
    assert report.to_dict()["signatures"][0]["revoked_at"] is not None
    assert no_network == []


def test_revoked_before_the_time_stamp_fails(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any]) -> None:
    at = doc_pki.now + 45 * DAY
    with_crl = TrustSettings(trust_roots=[doc_pki.root], crls=[doc_pki.crl("interm", at)])
    report = validate(documents["revoked before"], at, with_crl, pki=doc_pki)
    first = report.signatures[0]
    assert (first.indication, first.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED"), \
        report.to_text()
    assert no_network == []


def test_after_the_tsa_certificate_expired(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any]) -> None:
    """The renewed B-LTA (archive time-stamp from a TSA that lives on) passes two years on;
    without renewal, B-LT and B-LTA are INDETERMINATE: nothing proves the time-stamps existed
    while their TSA certificate was valid."""
    two_years = doc_pki.now + 730 * DAY
    report = validate(documents["short B-LTA renewed"], two_years, pki=doc_pki)
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    for name in ("short B-LT", "short B-LTA"):
        for at in (doc_pki.now + SHORT_TSA_LIFETIME + DAY, two_years):
            report = validate(documents[name], at, pki=doc_pki)
            [sig] = report.signatures
            assert (sig.indication, sig.sub_indication) == (
                Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE"), report.to_text()
            assert any("expired" in m for m in sig.messages)
    # before the TSA certificate expires, both still pass
    for name in ("short B-LT", "short B-LTA"):
        report = validate(documents[name], doc_pki.now + dt.timedelta(hours=1), pki=doc_pki)
        assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    assert no_network == []


def test_archive_status_names_the_expiring_time_stamp(documents: dict[str, bytes],
                                                      doc_pki: DocumentPki) -> None:
    short = archive_status(io.BytesIO(documents["short B-LTA"]))
    assert short.expires == doc_pki.cert("tsa-short").not_valid_after_utc
    assert short.expires_within(7 * DAY, doc_pki.now)
    renewed = archive_status(io.BytesIO(documents["short B-LTA renewed"]))
    assert renewed.document_timestamps == 2
    assert renewed.expires is not None and not renewed.expires_within(365 * DAY, doc_pki.now)


def test_a_forged_revocation_statement_neither_fails_nor_shows(
        documents: dict[str, bytes], doc_pki: DocumentPki, no_network: list[Any]) -> None:
    """A CRL naming the signer's CA as issuer but signed with another key, saying the
    certificate was revoked before the signature: ignored (the attack fails)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    interm = doc_pki.interm
    serial = doc_pki.cert("official").serial_number
    at = doc_pki.now + 30 * DAY
    forged = (x509.CertificateRevocationListBuilder()
              .issuer_name(interm.subject)
              .last_update(doc_pki.now)
              .next_update(at + 30 * DAY)
              .add_revoked_certificate(x509.RevokedCertificateBuilder()
                                       .serial_number(serial)
                                       .revocation_date(doc_pki.now - 5 * DAY).build())
              .sign(doc_pki.key("untrusted-root"), hashes.SHA256()))  # type: ignore[arg-type]
    from cryptography.hazmat.primitives import serialization

    trust = TrustSettings(trust_roots=[doc_pki.root],
                          crls=[forged.public_bytes(serialization.Encoding.DER)])
    report = validate(documents["B-LT"], at, trust, pki=doc_pki)
    [sig] = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, report.to_text()
    assert sig.revoked_at is None and "revoked" not in report.to_text()
    assert no_network == []
