"""What an XML signature covers: the report names the signed element, applications read the signed
data, wrapping attacks and unexpected signers fail with their own reasons."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.verifier import SignatureConfiguration, XMLVerifier

from signing.errors import InvalidInput
from signing.sign import ExpectedSigner, XmlDsigSigner, verify_xml
from signing.sign.errors import SignatureInvalid, SignatureWrapped, SignerNotExpected
from signing.sign.expected import certificate_tax_codes, check_signer
from signing.sign.revocation import TrustSettings
from signing.sign.xmldsig import DS_NAMESPACE, inspect_xml
from signing.validate import Indication, validate_xml
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.support.pki import TestPki

DOC = ('<BLai><DLBLai Id="DLBLai"><Ten>Biên lai thu lệ phí</Ten><TgTien>30000</TgTien></DLBLai>'
       '<DSCKS><NBan/></DSCKS></BLai>').encode()
DS = f"{{{DS_NAMESPACE}}}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sign(pki: DocumentPki, label: str = "agency", document: bytes = DOC,
         reference_id: str | None = "DLBLai") -> bytes:
    cred = pki.credential(label)
    return XmlDsigSigner(cred.key, [cred.cert, *cred.chain]).sign_xml(
        document, signing_time=now(), reference_id=reference_id, signature_id="NBan",
        signature_parent="DSCKS/NBan")


def wrap(signed: bytes, *, hide_in: str) -> bytes:
    """The classic wrapping attack: the signed original moved aside (into an extension element,
    or behind the signatures), a forged copy without the Id where readers look. (Inside the
    signature's ``Object`` it would pick up the ``ds`` namespace, which inclusive C14N 1.1 then
    signs, so the digest would no longer match.)"""
    root = etree.fromstring(signed)
    original = root.find("DLBLai")
    assert original is not None
    forged = etree.fromstring(etree.tostring(original))
    del forged.attrib["Id"]
    forged_total = forged.find("TgTien")
    assert forged_total is not None
    forged_total.text = "300"
    root.replace(original, forged)
    if hide_in == "after":
        root.append(original)
    else:
        etree.SubElement(root, "PhanMoRong").append(original)
    return bytes(etree.tostring(root))


def test_report_names_the_signed_element_and_hands_out_the_signed_data(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    signed = sign(doc_pki)
    report = validate_xml(signed, trust=trust, at=now())
    [result] = report.signatures
    assert result.indication is Indication.TOTAL_PASSED, report.to_text()
    [element] = result.signed_elements
    assert (element.path, element.id, element.uri) == ("/BLai/DLBLai", "DLBLai", "#DLBLai")
    digest_value = etree.fromstring(signed).find(
        f".//{DS}Reference[@URI='#DLBLai']/{DS}DigestValue")
    assert digest_value is not None and element.digest == digest_value.text
    assert element.digest_algorithm == "sha256"
    assert result.signed_data is not None
    assert element.sha256 == hashlib.sha256(result.signed_data).hexdigest()
    # The digest in the signature is the SHA-256 of exactly the data handed out.
    assert base64.b64decode(element.digest) == hashlib.sha256(result.signed_data).digest()
    assert etree.fromstring(result.signed_data).findtext("TgTien") == "30000"
    assert "Signed element: /BLai/DLBLai (Id DLBLai)" in report.to_text()
    data = report.to_dict()["signatures"][0]
    assert data["signed_elements"][0]["path"] == "/BLai/DLBLai"
    assert "signed_data" not in data
    report.to_json()  # serialisable


@pytest.mark.parametrize("hide_in", ["after", "extension"])
def test_forged_copy_with_the_original_moved_aside_fails(
        doc_pki: DocumentPki, trust: TrustSettings, hide_in: str) -> None:
    attacked = wrap(sign(doc_pki), hide_in=hide_in)
    # The attack is real: the signature itself still verifies (signxml alone accepts it) ...
    cert = doc_pki.credential("agency").cert
    plain = XMLVerifier().verify(
        attacked, x509_cert=cert, id_attribute="Id", validate_schema=False,
        expect_config=SignatureConfiguration(expect_references=2,
                                             verification_time=cert.not_valid_before_utc))
    assert isinstance(plain, list) and len(plain) == 2
    # ... and a reader of the document as received sees the forged amount.
    assert etree.fromstring(attacked).findtext("DLBLai/TgTien") == "300"
    forged_at = "/BLai/DLBLai[1]" if hide_in == "after" else "/BLai/DLBLai"

    report = validate_xml(attacked, trust=trust, at=now())
    [result] = report.signatures
    assert (result.indication, result.sub_indication) == \
        (Indication.TOTAL_FAILED, "SIGNATURE_WRAPPING"), report.to_text()
    [element] = result.signed_elements
    where = "/BLai/DLBLai[2]" if hide_in == "after" else "/BLai/PhanMoRong/DLBLai"
    assert element.path == where
    assert f"{forged_at} imitates the signed element {where} outside the signed data" \
        in result.messages
    assert result.signed_data is not None
    assert etree.fromstring(result.signed_data).findtext("TgTien") == "30000"
    with pytest.raises(SignatureWrapped):
        verify_xml(attacked)


def test_unsigned_data_inside_the_signature_is_reported(doc_pki: DocumentPki,
                                                        trust: TrustSettings) -> None:
    signed = sign(doc_pki, reference_id=None)  # the whole document
    root = etree.fromstring(signed)
    obj = etree.SubElement(root.find(f".//{DS}Signature"), f"{DS}Object")
    etree.SubElement(etree.SubElement(obj, "DLBLai"), "TgTien").text = "300"
    attacked = etree.tostring(root)
    [result] = validate_xml(attacked, trust=trust, at=now()).signatures
    assert result.sub_indication == "SIGNATURE_WRAPPING"
    assert any("holds data inside a signature that no reference covers" in m
               for m in result.messages)
    assert result.signed_elements[0].path == "/"
    with pytest.raises(SignatureWrapped):
        verify_xml(attacked)
    untouched = validate_xml(signed, trust=trust, at=now()).signatures[0]
    assert untouched.indication is Indication.TOTAL_PASSED, untouched.messages


def test_a_comment_inside_the_signed_amount_does_not_change_what_is_read(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    signed = sign(doc_pki)
    attacked = signed.replace(b"<TgTien>30000</TgTien>", b"<TgTien>300<!-- -->00</TgTien>")
    assert attacked != signed
    # A naive reader of the received document sees 300 ...
    assert etree.fromstring(attacked).findtext("DLBLai/TgTien") == "300"
    # ... the signature does not cover comments, so it still verifies; what is read is 30000.
    [verified] = verify_xml(attacked)
    assert verified.signed_tree().findtext("TgTien") == "30000"
    [result] = validate_xml(attacked, trust=trust, at=now()).signatures
    assert result.indication is Indication.TOTAL_PASSED
    assert any("comment(s) inside the signed element are not signed" in m
               for m in result.messages)


def test_a_processing_instruction_inside_the_signed_data_breaks_the_signature(
        doc_pki: DocumentPki, trust: TrustSettings) -> None:
    attacked = sign(doc_pki).replace(b"<TgTien>30000", b"<TgTien>300<?x 1?>00")
    [result] = validate_xml(attacked, trust=trust, at=now()).signatures
    assert (result.indication, result.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")


def test_several_signed_elements_of_one_name_are_not_imitations(pki: TestPki) -> None:
    """A batch: two items of the same name, each signed by its own signature."""
    issued = pki.issuing.issue("UBND", agency_code="000.00.00.H29")
    signer = XmlDsigSigner(issued.key, [issued.cert, pki.issuing.cert])
    doc = b'<DS><Muc Id="a"><STien>1</STien></Muc><Muc Id="b"><STien>2</STien></Muc><CKS/></DS>'
    once = signer.sign_xml(doc, signing_time=now(), reference_id="a", signature_id="S1",
                           signature_parent="CKS/A")
    twice = signer.sign_xml(once, signing_time=now(), reference_id="b", signature_id="S2",
                            signature_parent="CKS/B")
    results = inspect_xml(twice)
    assert [(r.signed_element.path if r.signed_element else None, r.imitations)
            for r in results] == [("/DS/Muc[1]", ()), ("/DS/Muc[2]", ())]
    # The same document with a third, unsigned Muc: now an imitation for both.
    extra = twice.replace(b"<CKS>", b"<Muc><STien>9</STien></Muc><CKS>")
    assert all(r.imitations for r in inspect_xml(extra))


def test_expected_signer_by_agency_code(doc_pki: DocumentPki, trust: TrustSettings) -> None:
    signed = sign(doc_pki)
    ok = validate_xml(signed, trust=trust, at=now(),
                      expected_signer=ExpectedSigner(agency_code=AGENCY_CODE))
    assert ok.signatures[0].indication is Indication.TOTAL_PASSED
    assert any("signed by the expected signer" in m for m in ok.signatures[0].messages)
    other = validate_xml(signed, trust=trust, at=now(),
                         expected_signer=ExpectedSigner(agency_code="000.00.00.H26"))
    [result] = other.signatures
    assert (result.indication, result.sub_indication) == \
        (Indication.TOTAL_FAILED, "SIGNER_NOT_EXPECTED")
    assert f"the certificate's agency code is {AGENCY_CODE}, not 000.00.00.H26" in result.messages
    assert "SIGNER_NOT_EXPECTED" in other.to_text()
    with pytest.raises(SignerNotExpected):
        verify_xml(signed, expected_signer=ExpectedSigner(agency_code="000.00.00.H26"))
    assert verify_xml(signed, expected_signer=ExpectedSigner(agency_code=AGENCY_CODE))
    by_subject = validate_xml(signed, trust=trust, at=now(), expected_signer=ExpectedSigner(
        subject={"O": "UBND Thành phố Hà Nội"})).signatures[0]
    assert by_subject.sub_indication == "SIGNER_NOT_EXPECTED"
    assert validate_xml(signed, trust=trust, at=now(), expected_signer=ExpectedSigner(
        subject={"O": "UBND Thành phố Hồ Chí Minh"})).signatures[0].passed


def _cert_with(*attrs: x509.NameAttribute[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cục Thuế"), *attrs])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now()).not_valid_after(now() + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))


def test_expected_signer_by_tax_code() -> None:
    cert = _cert_with(x509.NameAttribute(NameOID.USER_ID, "MST:0301234567"))
    assert certificate_tax_codes(cert) == ("0301234567",)
    assert check_signer(cert, ExpectedSigner(tax_code="0301234567")).ok
    wrong = check_signer(cert, ExpectedSigner(tax_code="0309876543"))
    assert not wrong.ok and "tax code is 0301234567, not 0309876543" in wrong.reasons[0]
    # Both named, either carried (receipts): the carried one decides; neither carried fails.
    both = ExpectedSigner(agency_code="000.00.00.H29", tax_code="0301234567", require_all=False)
    assert check_signer(cert, both).ok
    assert not check_signer(cert, ExpectedSigner(agency_code="000.00.00.H29")).ok
    assert not check_signer(_cert_with(), both).ok
    etsi = _cert_with(x509.NameAttribute(x509.ObjectIdentifier("2.5.4.97"), "VATVN-0301234567"))
    assert check_signer(etsi, ExpectedSigner(tax_code="0301234567")).ok


@pytest.mark.parametrize("kwargs", [
    {}, {"agency_code": "h29 lower"}, {"tax_code": "12345"}, {"subject": {"XX": "1"}},
])
def test_malformed_expected_signer_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        ExpectedSigner(**kwargs)  # type: ignore[arg-type]


def test_tampering_still_fails_before_anything_else(doc_pki: DocumentPki) -> None:
    with pytest.raises(SignatureInvalid):
        verify_xml(sign(doc_pki).replace(b"30000", b"30001"),
                   expected_signer=ExpectedSigner(agency_code=AGENCY_CODE))


def test_expected_path_pins_the_signed_element(doc_pki: DocumentPki) -> None:
    signed = sign(doc_pki)
    [verified] = verify_xml(signed, expected_path="/BLai/DLBLai")
    assert verified.signed_element is not None and verified.signed_element.id == "DLBLai"
    with pytest.raises(SignatureWrapped):
        verify_xml(signed, expected_path="/BLai/DSCKS")
