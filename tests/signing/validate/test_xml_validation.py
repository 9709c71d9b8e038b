"""XML signature validation with EN 319 102-1 indications, against the live test PKI."""

from __future__ import annotations

import datetime as dt

import pytest

from signing.sign import XmlDsigSigner
from signing.sign.revocation import TrustSettings
from signing.validate import Indication, TimeSource, validate_xml
from tests.signing.sign.docpki import DocumentPki

DOC = ('<BLai><DLBLai Id="DLBLai"><Ten>Biên lai thu lệ phí</Ten><TgTien>30000</TgTien></DLBLai>'
       '<DSCKS><NBan/></DSCKS></BLai>').encode()


def sign(pki: DocumentPki, label: str) -> bytes:
    cred = pki.credential(label)
    return XmlDsigSigner(cred.key, [cred.cert, *cred.chain]).sign_xml(
        DOC, signing_time=dt.datetime.now(dt.UTC), reference_id="DLBLai", signature_id="NBan",
        signature_parent="DSCKS/NBan")


def test_agency_signature_passes(doc_pki: DocumentPki, trust: TrustSettings) -> None:
    report = validate_xml(sign(doc_pki, "agency"), trust=trust, at=dt.datetime.now(dt.UTC))
    [result] = report.signatures
    assert result.indication is Indication.TOTAL_PASSED, report.to_text()
    assert result.id == "NBan"
    assert result.signer is not None and result.signer.agency_code == "000.00.00.H29"
    assert result.signing_time_source is TimeSource.CLAIMED


@pytest.mark.parametrize(("label", "expected"), [
    ("revoked", {(Indication.TOTAL_FAILED, "REVOKED")}),
    ("expired", {(Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE")}),
])
def test_bad_signers(doc_pki: DocumentPki, trust: TrustSettings, label: str,
                     expected: set[tuple[Indication, str]]) -> None:
    result = validate_xml(sign(doc_pki, label), trust=trust,
                          at=dt.datetime.now(dt.UTC)).signatures[0]
    assert (result.indication, result.sub_indication) in expected


def test_tampered_and_foreign(doc_pki: DocumentPki, trust: TrustSettings) -> None:
    signed = sign(doc_pki, "agency")
    tampered = signed.replace(b"30000", b"3000")
    result = validate_xml(tampered, trust=trust, at=dt.datetime.now(dt.UTC)).signatures[0]
    assert (result.indication, result.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")
    elsewhere = TrustSettings(trust_roots=[doc_pki.untrusted_root])
    result = validate_xml(signed, trust=elsewhere, at=dt.datetime.now(dt.UTC)).signatures[0]
    assert (result.indication, result.sub_indication) == \
        (Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND")
