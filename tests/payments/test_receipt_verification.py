"""Receipts are bound to their issuer and read only from what is signed (issue 12 item 5).

Each attack is shown to be real first (the signature alone, or a naive reader, accepts it), then
to fail :func:`payments.receipts.verification.verify_receipt` with its own reason."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from payments.fees import FeeKind
from payments.payments import Payer
from payments.receipts import (
    ReceiptData,
    ReceiptKind,
    ReceiptLine,
    build_receipt_xml,
    parse_receipt_xml,
    sign_document,
)
from payments.receipts.verification import ReceiptNotVerified, verify_receipt
from signing.ca import CertificateSpec, KeyUsages, SubjectInfo, issue_certificate
from signing.sign import XmlDsigSigner, verify_xml
from signing.sign.revocation import TrustSettings
from signing.sign.xmldsig import inspect_xml
from tests.payments.support import HCM, ORGANISATIONS, T0, WARD, signers
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.fixtures import doc_pki, trust  # noqa: F401 - fixtures
from tests.support.pki import TestPki

RECEIPT = ReceiptData(
    "r1", ReceiptKind.ORIGINAL, "EBL01", "25T", 1, T0, ORGANISATIONS[HCM],
    Payer("Nguyễn Văn A", id_number="079084000999", address="12 Lý Tự Trọng"),
    (ReceiptLine("LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),),
    "Chuyển khoản (VietQR)", "p1", "1.000494", "H29-0001")


@pytest.fixture(scope="module")
def signed(pki: TestPki) -> bytes:
    return sign_document(signers(pki).signer_for(HCM), build_receipt_xml(RECEIPT),
                         signing_time=T0)


def reason(pki: TestPki, document: bytes) -> str:
    with pytest.raises(ReceiptNotVerified) as caught:
        verify_receipt(document, trust=[pki.root.cert])
    return caught.value.reason


def test_a_receipt_sealed_by_its_collecting_body_verifies(pki: TestPki, signed: bytes) -> None:
    verified = verify_receipt(signed, trust=[pki.root.cert])
    assert verified.receipt == dataclasses.replace(RECEIPT, id="")
    assert verified.total == 100000
    assert verified.collector.agency_code == HCM
    assert verified.signer_agency_code == HCM
    assert verified.signed_path == "/"  # sign_document signs the whole document
    assert verified.signed_data.startswith(b'<BLai><DLBLai Id="DLBLai">')
    assert b"Signature" not in verified.signed_data
    assert verified.signing_time == T0


def test_a_receipt_resealed_by_another_agency_of_the_same_ca_fails(pki: TestPki) -> None:
    forged = sign_document(signers(pki).signer_for(WARD), build_receipt_xml(RECEIPT),
                           signing_time=T0)
    # The attack is real: the signature is valid and chains to the same root.
    assert verify_xml(forged, trust_roots=[pki.root.cert], at=pki.now)
    assert reason(pki, forged) == "SIGNER_NOT_EXPECTED"
    with pytest.raises(ReceiptNotVerified, match="000.00.13.H29, not 000.00.00.H29"):
        verify_receipt(forged, trust=[pki.root.cert])
    # The ward's own receipt, naming the ward, is fine.
    own = dataclasses.replace(RECEIPT, collector=ORGANISATIONS[WARD])
    verify_receipt(sign_document(signers(pki).signer_for(WARD), build_receipt_xml(own),
                                 signing_time=T0), trust=[pki.root.cert])


def _seal(pki: TestPki, agency_code: str | None, tax_code: str) -> XmlDsigSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ủy ban nhân dân"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "UBND"),
                         x509.NameAttribute(NameOID.USER_ID, f"MST:{tax_code}")])
    cert = issue_certificate(CertificateSpec(
        subject=subject, not_before=pki.now - dt.timedelta(hours=1),
        not_after=pki.now + dt.timedelta(days=365), key_usages=KeyUsages(digital_signature=True),
        subject_info=SubjectInfo(agency_code=agency_code) if agency_code else None),
        key.public_key(), pki.issuing.key, pki.issuing.cert)
    return XmlDsigSigner(key, [cert, pki.issuing.cert])


def test_the_seals_tax_code_must_be_the_collecting_bodys(pki: TestPki) -> None:
    own_tax = ORGANISATIONS[HCM].tax_code
    other_tax = ORGANISATIONS[WARD].tax_code
    for agency, tax, ok in ((HCM, own_tax, True), (None, own_tax, True),
                            (HCM, other_tax, False), (None, other_tax, False)):
        doc = sign_document(_seal(pki, agency, tax), build_receipt_xml(RECEIPT), signing_time=T0)
        if ok:
            assert verify_receipt(doc, trust=[pki.root.cert]).signer_tax_codes == (tax,)
        else:
            assert reason(pki, doc) == "SIGNER_NOT_EXPECTED", (agency, tax)


def test_a_seal_naming_no_body_is_not_accepted(pki: TestPki) -> None:
    issued = pki.issuing.issue("UBND", org="Ủy ban nhân dân")  # no agency code, no tax code
    doc = sign_document(XmlDsigSigner(issued.key, [issued.cert, pki.issuing.cert]),
                        build_receipt_xml(RECEIPT), signing_time=T0)
    assert verify_xml(doc, trust_roots=[pki.root.cert], at=pki.now)
    assert reason(pki, doc) == "SIGNER_NOT_EXPECTED"


@pytest.mark.parametrize("where", [b"<STien>100000</STien>", b"<TgTien>100000</TgTien>"])
def test_a_comment_inside_a_signed_amount_does_not_change_the_amount_read(
        pki: TestPki, signed: bytes, where: bytes) -> None:
    attacked = signed.replace(where, where.replace(b"100000", b"100<!-- -->000"))
    assert attacked != signed
    # The attack is real: the signature still verifies, a naive reader sees 100 đồng.
    assert verify_xml(attacked, trust_roots=[pki.root.cert], at=pki.now)
    naive = etree.fromstring(attacked)
    assert naive.findtext(".//" + where.decode().split(">")[0][1:]) == "100"
    if where.startswith(b"<STien>"):
        assert parse_receipt_xml(attacked).total == 100
    verified = verify_receipt(attacked, trust=[pki.root.cert])
    assert verified.total == 100000
    assert verified.receipt.lines[0].amount == 100000


def test_an_edited_amount_fails(pki: TestPki, signed: bytes) -> None:
    assert reason(pki, signed.replace(b"<STien>100000", b"<STien>900000")) == \
        "SIGNATURE_INVALID"


def test_a_forged_copy_with_the_signed_original_moved_aside_fails(pki: TestPki) -> None:
    """A receipt signed by reference to ``DLBLai`` (as other issuers' software signs them)."""
    issued = signers(pki).issued[HCM]
    signed = XmlDsigSigner(issued.key, [issued.cert, pki.issuing.cert]).sign_xml(
        build_receipt_xml(RECEIPT), signing_time=T0, reference_id="DLBLai",
        signature_id="TCThu-sig", signature_parent="DSCKS/TCThu")
    verified = verify_receipt(signed, trust=[pki.root.cert])
    assert (verified.signed_path, verified.total) == ("/BLai/DLBLai", 100000)
    root = etree.fromstring(signed)
    original = root.find("DLBLai")
    assert original is not None
    forged = etree.fromstring(etree.tostring(original))
    del forged.attrib["Id"]
    for amount in forged.iter("STien", "TgTien"):
        amount.text = "1000"
    root.replace(original, forged)
    etree.SubElement(root, "PhanMoRong").append(original)
    attacked = etree.tostring(root)
    assert parse_receipt_xml(attacked).total == 1000  # what a naive reader would see
    assert reason(pki, attacked) == "SIGNATURE_WRAPPING"


def test_unsigned_data_inside_the_signature_fails(pki: TestPki, signed: bytes) -> None:
    """Whole-document signatures leave only the signature itself unsigned."""
    root = etree.fromstring(signed)
    signature = root.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert signature is not None
    obj = etree.SubElement(signature, "{http://www.w3.org/2000/09/xmldsig#}Object")
    etree.SubElement(etree.SubElement(obj, "TToan"), "TgTien").text = "1000"
    attacked = etree.tostring(root)
    [inspected] = inspect_xml(attacked)  # the signature itself still verifies
    assert inspected.imitations
    assert reason(pki, attacked) == "SIGNATURE_WRAPPING"


def test_a_foreign_ca_and_garbage_fail(pki: TestPki, signed: bytes) -> None:
    other = TestPki()
    doc = sign_document(signers(other).signer_for(HCM), build_receipt_xml(RECEIPT),
                        signing_time=T0)
    assert reason(pki, doc) == "UNTRUSTED_SIGNER"
    assert reason(pki, b"<BLai>") == "NOT_A_RECEIPT"
    assert reason(pki, build_receipt_xml(RECEIPT)) == "SIGNATURE_INVALID"  # unsigned


def test_with_revocation_against_the_live_pki(doc_pki: DocumentPki,  # noqa: F811
                                              trust: TrustSettings) -> None:  # noqa: F811
    cred = doc_pki.credential("agency")  # agency code 000.00.00.H29 = HCM
    now = dt.datetime.now(dt.UTC)
    receipt = dataclasses.replace(RECEIPT, issued_at=now)
    doc = sign_document(XmlDsigSigner(cred.key, [cred.cert, *cred.chain]),
                        build_receipt_xml(receipt), signing_time=now)
    assert verify_receipt(doc, trust=trust).total == 100000
    revoked = doc_pki.credential("revoked")  # a certificate without our agency code
    doc = sign_document(XmlDsigSigner(revoked.key, [revoked.cert, *revoked.chain]),
                        build_receipt_xml(receipt), signing_time=now)
    with pytest.raises(ReceiptNotVerified) as caught:
        verify_receipt(doc, trust=trust)
    assert caught.value.reason in {"SIGNER_NOT_EXPECTED", "UNTRUSTED_SIGNER"}
