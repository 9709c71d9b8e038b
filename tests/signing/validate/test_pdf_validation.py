"""Attacks and bad signers must never come out TOTAL-PASSED: each yields TOTAL-FAILED or
INDETERMINATE with the sub-indication EN 319 102-1 gives the case."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from server.documents.transport import HttpTimeStampTransport
from signing.sign.pades import PadesLevel, PadesOptions, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, validate_pdf
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf


def signed_by(pki: DocumentPki, label: str, level: PadesLevel = PadesLevel.B_B,
              tsa: HttpTimeStampTransport | None = None, data: bytes | None = None) -> bytes:
    cred = pki.credential(label)
    out = io.BytesIO()
    sign_pdf(io.BytesIO(data or decision_pdf()), out, KeySigner(cred.key, cred.cert, cred.chain),
             at=dt.datetime.now(dt.UTC), options=PadesOptions(level=level), timestamps=tsa)
    return out.getvalue()


def verdict(data: bytes, trust: TrustSettings) -> tuple[Indication, str | None]:
    report = validate_pdf(io.BytesIO(data), trust=trust, at=dt.datetime.now(dt.UTC))
    assert report.signatures
    result = report.signatures[0]
    assert report.indication is not Indication.TOTAL_PASSED
    return result.indication, result.sub_indication


def test_a_changed_byte_inside_the_signed_range_is_a_hash_failure(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    data = signed_by(doc_pki, "official")
    position = data.index(b"/MediaBox")
    tampered = data[:position] + b"/MediaBoy" + data[position + 9:]
    assert verdict(tampered, trust) == (Indication.TOTAL_FAILED, "HASH_FAILURE")


def test_revoked_signer(doc_pki: DocumentPki, trust: TrustSettings) -> None:
    indication, sub = verdict(signed_by(doc_pki, "revoked"), trust)
    assert (indication, sub) in {(Indication.TOTAL_FAILED, "REVOKED"),
                                 (Indication.INDETERMINATE, "REVOKED_NO_POE")}


def test_expired_signer(doc_pki: DocumentPki, trust: TrustSettings) -> None:
    indication, sub = verdict(signed_by(doc_pki, "expired"), trust)
    assert indication is Indication.INDETERMINATE
    assert sub in {"OUT_OF_BOUNDS_NO_POE", "EXPIRED"}


def test_untrusted_root(doc_pki: DocumentPki) -> None:
    elsewhere = TrustSettings(trust_roots=[doc_pki.untrusted_root])
    assert verdict(signed_by(doc_pki, "official"), elsewhere) == \
        (Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND")


def test_content_changed_in_an_appended_update(doc_pki: DocumentPki,
                                               trust: TrustSettings) -> None:
    data = signed_by(doc_pki, "official")
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 24 Tf 100 700 Td (Quyet dinh bi sua) Tj ET"))
    page["/Contents"] = forged
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    indication, sub = verdict(out.getvalue(), trust)
    assert indication is Indication.TOTAL_FAILED
    assert sub == "FORMAT_FAILURE"
    report = validate_pdf(io.BytesIO(out.getvalue()), trust=trust, at=dt.datetime.now(dt.UTC))
    assert report.signatures[0].modifications == "OTHER"


def test_unsigned_document_is_not_passed(trust: TrustSettings) -> None:
    report = validate_pdf(io.BytesIO(decision_pdf()), trust=trust, at=dt.datetime.now(dt.UTC))
    assert report.signatures == ()
    assert report.indication is Indication.INDETERMINATE


def test_reports_in_json_text_and_etsi_xml(doc_pki: DocumentPki, tsa: HttpTimeStampTransport,
                                           trust: TrustSettings) -> None:
    data = signed_by(doc_pki, "official", PadesLevel.B_T, tsa)
    report = validate_pdf(io.BytesIO(data), trust=trust, at=dt.datetime.now(dt.UTC))
    as_json = json.loads(report.to_json())
    assert as_json["indication"] == "TOTAL-PASSED"
    sig = as_json["signatures"][0]
    assert sig["signer"]["name"] == "Nguyễn Văn An"
    assert sig["signer"]["title"] == "Chủ tịch"
    assert sig["signer"]["agency_code"] == "000.00.00.H29"
    assert sig["signing_time_source"] == "signature-timestamp"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sig["signing_time"])
    text = report.to_text()
    assert "TOTAL-PASSED" in text and "Nguyễn Văn An, Chủ tịch" in text and "(GMT+7)" in text
    [xml] = report.etsi_xml_reports
    assert "urn:etsi:019102:mainindication:total-passed" in xml


@pytest.mark.parametrize("label", ["revoked", "expired"])
def test_bad_signers_cannot_make_long_term_signatures(
        doc_pki: DocumentPki, tsa: HttpTimeStampTransport, trust: TrustSettings,
        label: str) -> None:
    from signing.sign.errors import RevocationUnavailable, SigningRefused
    with pytest.raises((RevocationUnavailable, SigningRefused)):
        cred = doc_pki.credential(label)
        sign_pdf(io.BytesIO(decision_pdf()), io.BytesIO(),
                 KeySigner(cred.key, cred.cert, cred.chain), at=dt.datetime.now(dt.UTC),
                 options=PadesOptions(level=PadesLevel.B_LT), timestamps=tsa, trust=trust)


def test_responders_down_is_try_later_not_a_chain_failure(doc_pki: DocumentPki) -> None:
    """EN 319 102-1: revocation data that cannot be obtained now is INDETERMINATE / TRY_LATER;
    pyHanko reports it as CERTIFICATE_CHAIN_GENERAL_FAILURE."""
    from signing.sign.cms import sign_detached
    from signing.validate import validate_cms

    cred = doc_pki.credential("official")
    pdf = signed_by(doc_pki, "official")
    p7s = sign_detached(io.BytesIO(b"ho so"), KeySigner(cred.key, cred.cert, cred.chain),
                        at=dt.datetime.now(dt.UTC))
    orphan = signed_by(doc_pki, "orphan")  # names no OCSP responder or CRL of its own
    trust = TrustSettings(trust_roots=[doc_pki.root], fetch_timeout=2)
    with doc_pki.offline():
        assert verdict(pdf, trust) == (Indication.INDETERMINATE, "TRY_LATER")
        report = validate_pdf(io.BytesIO(pdf), trust=trust, at=dt.datetime.now(dt.UTC))
        assert any("try again later" in m for m in report.signatures[0].messages)
        cms_report = validate_cms(p7s, io.BytesIO(b"ho so"), trust=trust,
                                  at=dt.datetime.now(dt.UTC))
        assert (cms_report.indication, cms_report.signatures[0].sub_indication) == (
            Indication.INDETERMINATE, "TRY_LATER")
        # Not fetching at all is not "later": the data was never going to come.
        offline = TrustSettings(trust_roots=[doc_pki.root], allow_fetching=False)
        assert verdict(pdf, offline) == (Indication.INDETERMINATE,
                                         "CERTIFICATE_CHAIN_GENERAL_FAILURE")
    # With the responders up, the orphan's missing data is no reason to try later.
    assert verdict(orphan, trust)[1] != "TRY_LATER"
    # ...and the same signatures pass once the responders answer again.
    assert validate_pdf(io.BytesIO(pdf), trust=trust,
                        at=dt.datetime.now(dt.UTC)).indication is Indication.TOTAL_PASSED
