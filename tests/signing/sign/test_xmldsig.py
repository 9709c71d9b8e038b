"""Enveloped XML signatures in the tax e-document convention, checked by xmlsec1 (which nobody here
wrote) as well as by our own verifier."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from lxml import etree

from signing.ca import KeyAlgorithm
from signing.pkcs11 import Token, TokenConfig
from signing.sign import XmlDsigSigner, verify_xml
from signing.sign.errors import DocumentInvalid, SignatureInvalid, SignerMismatch
from tests.support.pki import Issued, TestPki, pem
from tests.support.softhsm import USER_PIN, SoftHsm

SIGNED_AT = dt.datetime(2025, 7, 1, 2, 30, 5, tzinfo=dt.UTC)  # 09:30:05 in Hà Nội

RECEIPT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<BLai xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><DLBLai Id="DLBLai">'
    '<TTChung><PBan>2.1.0</PBan><THDon>Biên lai thu phí, lệ phí</THDon>'
    '<KHMSHDon>EBL01</KHMSHDon><KHHDon>25T</KHHDon><SHDon>0000001</SHDon>'
    '<NLap>2025-07-01</NLap></TTChung><NDBLai><TTCQThu>'
    '<Ten>Ủy ban nhân dân phường Bến Thành</Ten><MST>0301234567</MST></TTCQThu>'
    '<TgTien>50000</TgTien></NDBLai></DLBLai><DSCKS><NBan/></DSCKS></BLai>'
).encode()


def signer_cert(pki: TestPki) -> Issued:
    return pki.issuing.issue("UBND phuong Ben Thanh", eku=ExtendedKeyUsageOID.EMAIL_PROTECTION,
                             agency_code="000.00.00.H29")


def xmlsec_verify(tmp_path: Path, pki: TestPki, signed: bytes, *ids: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "root.pem").write_bytes(pem(pki.root.cert))
    (tmp_path / "issuing.pem").write_bytes(pem(pki.issuing.cert))
    path = tmp_path / "signed.xml"
    path.write_bytes(signed)
    args = [a for i in ids for a in ("--id-attr:Id", i)]
    return subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(tmp_path / "root.pem"),
                           "--untrusted-pem", str(tmp_path / "issuing.pem"), *args, str(path)],
                          capture_output=True, text=True)


def sign_receipt(issued: Issued, pki: TestPki, key: object = None) -> bytes:
    signer = XmlDsigSigner(key or issued.key, [issued.cert, pki.issuing.cert])  # type: ignore[arg-type]
    return signer.sign_xml(RECEIPT, signing_time=SIGNED_AT, reference_id="DLBLai",
                           signature_id="NBan", signature_parent="DSCKS/NBan")


def test_receipt_signature_verifies_with_xmlsec1_and_carries_the_convention(
        pki: TestPki, tmp_path: Path) -> None:
    issued = signer_cert(pki)
    signed = sign_receipt(issued, pki)
    done = xmlsec_verify(tmp_path, pki, signed, "DLBLai", "Object")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("OK") and "SignedInfo References (ok/all): 2/2" in done.stderr

    root = etree.fromstring(signed)
    ns = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
    sig = root.find("DSCKS/NBan/ds:Signature", ns)
    assert sig is not None and sig.get("Id") == "NBan"
    assert [etree.QName(c).localname for c in sig] == ["SignedInfo", "SignatureValue", "KeyInfo",
                                                       "Object"]
    assert sig.findtext("ds:KeyInfo/ds:X509Data/ds:X509SubjectName", namespaces=ns) == \
        issued.cert.subject.rfc4514_string()
    assert len(sig.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", ns)) == 2
    assert sig.findtext("ds:Object/ds:SignatureProperties/ds:SignatureProperty/ds:SigningTime",
                        namespaces=ns) == "2025-07-01T09:30:05"
    assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", ns).get("Algorithm") == \
        "http://www.w3.org/2006/12/xml-c14n11"
    uris = [r.get("URI") for r in sig.findall("ds:SignedInfo/ds:Reference", ns)]
    assert uris == ["#DLBLai", "#NBan-SigningTime"]

    [verified] = verify_xml(signed, trust_roots=[pki.root.cert], at=pki.now)
    assert verified.signer == issued.cert
    assert verified.signing_time == SIGNED_AT
    assert verified.reference_uri == "#DLBLai"
    assert "Bến Thành".encode() in verified.signed_data


@pytest.mark.parametrize("change", [
    (b"<TgTien>50000</TgTien>", b"<TgTien>60000</TgTien>"),
    ("Bến Thành".encode(), "Bến Thanh".encode()),
    (b"2025-07-01T09:30:05", b"2025-07-01T09:30:06"),  # the signing time is signed too
])
def test_one_changed_character_fails_both_verifiers(pki: TestPki, tmp_path: Path,
                                                    change: tuple[bytes, bytes]) -> None:
    signed = sign_receipt(signer_cert(pki), pki)
    assert change[0] in signed
    tampered = signed.replace(change[0], change[1], 1)
    done = xmlsec_verify(tmp_path, pki, tampered, "DLBLai", "Object")
    assert done.returncode != 0
    assert not done.stderr.startswith("OK")
    with pytest.raises(SignatureInvalid):
        verify_xml(tampered)


def test_whole_document_signature_with_rsa(pki: TestPki, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = signer_cert(pki)
    from signing.ca import CertificateSpec, KeyUsages, issue_certificate
    cert = issue_certificate(CertificateSpec(
        subject=issued.cert.subject, not_before=pki.now - dt.timedelta(hours=1),
        not_after=pki.now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True)),
        key.public_key(), pki.issuing.key, pki.issuing.cert)
    signed = XmlDsigSigner(key, [cert, pki.issuing.cert]).sign_xml(
        RECEIPT, signing_time=SIGNED_AT)
    assert b"rsa-sha256" in signed
    done = xmlsec_verify(tmp_path, pki, signed, "Object")
    assert done.returncode == 0, done.stderr
    [verified] = verify_xml(signed, trust_roots=[pki.root.cert], at=pki.now)
    assert verified.reference_uri == ""
    assert verified.signer == cert


def test_untrusted_root_and_foreign_certificate_are_refused(pki: TestPki) -> None:
    signed = sign_receipt(signer_cert(pki), pki)
    with pytest.raises(SignatureInvalid):
        verify_xml(signed, trust_roots=[pki.foreign_root.cert], at=pki.now)
    foreign = pki.foreign
    swapped = XmlDsigSigner(foreign.key, [foreign.cert]).sign_xml(
        RECEIPT, signing_time=SIGNED_AT, reference_id="DLBLai")
    verify_xml(swapped)  # cryptographically fine ...
    with pytest.raises(SignatureInvalid):  # ... but not from our PKI
        verify_xml(swapped, trust_roots=[pki.root.cert], at=pki.now)


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048])
def test_signer_from_a_softhsm_token(pki: TestPki, softhsm: SoftHsm, tmp_path: Path,
                                     algorithm: KeyAlgorithm) -> None:
    """Token keys sign through cryptography's key interface (ECDSA and RSA PKCS#1 v1.5)."""
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    key = token.generate_key(softhsm.unique_label("xml"), algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    from signing.ca import CertificateSpec, KeyUsages, issue_certificate
    cert = issue_certificate(CertificateSpec(
        subject=signer_cert(pki).cert.subject, not_before=pki.now - dt.timedelta(hours=1),
        not_after=pki.now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True)),
        key.public_key(), pki.issuing.key, pki.issuing.cert)
    signed = XmlDsigSigner(key, [cert, pki.issuing.cert]).sign_xml(
        RECEIPT, signing_time=SIGNED_AT, reference_id="DLBLai", signature_id="NBan",
        signature_parent="DSCKS/NBan")
    done = xmlsec_verify(tmp_path, pki, signed, "DLBLai", "Object")
    assert done.returncode == 0, done.stderr
    assert verify_xml(signed, trust_roots=[pki.root.cert], at=pki.now)[0].signer == cert


def test_bad_inputs(pki: TestPki) -> None:
    issued = signer_cert(pki)
    with pytest.raises(SignerMismatch):
        XmlDsigSigner(pki.hcm.key, [issued.cert])
    signer = XmlDsigSigner(issued.key, [issued.cert])
    with pytest.raises(DocumentInvalid):
        signer.sign_xml(b"<not-closed>", signing_time=SIGNED_AT)
    with pytest.raises(Exception, match="no single element"):
        signer.sign_xml(RECEIPT, signing_time=SIGNED_AT, reference_id="Missing")
    with pytest.raises(Exception, match="timezone-aware"):
        signer.sign_xml(RECEIPT, signing_time=dt.datetime(2025, 7, 1))
    with pytest.raises(SignatureInvalid):
        verify_xml(RECEIPT)  # no signature at all


def test_documents_with_a_dtd_are_refused(pki: TestPki) -> None:
    issued = signer_cert(pki)
    evil = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<r Id="r">&x;</r>')
    with pytest.raises(DocumentInvalid, match="DTD"):
        XmlDsigSigner(issued.key, [issued.cert]).sign_xml(evil, signing_time=SIGNED_AT)
    with pytest.raises(DocumentInvalid, match="DTD"):
        verify_xml(evil)
