"""The receipt QR (compact JWS by the collecting body's seal): it verifies offline against the root,
and every forgery the issue names fails: a changed field, another body's seal, a foreign CA, an
algorithm swap, a tax code the seal does not state."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json

import pytest

from payments.errors import ReceiptQrInvalid
from payments.receipts.qr_jws import QrClaims, claims_for, qr_text, verify_qr
from signing.ca import KeyAlgorithm
from signing.pkcs11 import Token, TokenConfig
from tests.payments.receipt_qr_support import QrPki
from tests.payments.support import HCM, WARD
from tests.payments.test_receipts_xmlsec import RECEIPT
from tests.support.softhsm import USER_PIN, SoftHsm

SIGNED_XML = b"<BLai>signed receipt stand-in</BLai>"
PAGE = "https://dvc.example.vn/payments/receipts/check"


@pytest.fixture(scope="module")
def qpki() -> QrPki:
    return QrPki.create()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("kind,alg", [("ec", "ES256"), ("rsa", "PS256")])
def test_qr_verifies_offline_and_names_the_receipt(qpki: QrPki, kind: str, alg: str) -> None:
    seal = qpki.seal(kind=kind)
    token = seal.sign_receipt(RECEIPT, SIGNED_XML)
    text = qr_text(token, PAGE)
    assert text.startswith(PAGE + "#")
    verified = verify_qr(text, roots=[qpki.root.cert], certificates=qpki.bundle(seal))
    assert verified.algorithm == alg
    c = verified.claims
    assert (c.label, c.total, c.agency_code, c.tax_code, c.payer_ref) == (
        "EBL01-25T-0000001", 100000, HCM, "0301234567", "079084000999")
    assert c.xml_sha256_hex == hashlib.sha256(SIGNED_XML).hexdigest()
    assert c.issued_at == RECEIPT.issued_at
    assert [x.subject for x in verified.chain] == [seal.certificate.subject,
                                                   qpki.issuing.cert.subject,
                                                   qpki.root.cert.subject]
    header = json.loads(unb64(token.split(".")[0]))
    assert header["alg"] == alg and header["typ"] == "BL1"
    assert len(text) < (520 if kind == "ec" else 800)  # a QR phones read: version <= 18 for EC


def _resign_payload(token: str, change: dict[str, object]) -> str:
    head, body, sig = token.split(".")
    payload = json.loads(unb64(body))
    payload.update(change)
    new_body = b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{head}.{new_body}.{sig}"


@pytest.mark.parametrize("change", [
    {"t": 1000000}, {"n": "0000002"}, {"k": "EBL02"}, {"s": "26T"}, {"d": "2025-08-02T09:00:00"},
    {"m": "0309876543"}, {"b": WARD}, {"p": "079084000998"},
    {"h": b64(hashlib.sha256(b"another document").digest())},
])
def test_a_changed_field_fails(qpki: QrPki, change: dict[str, object]) -> None:
    seal = qpki.seal()
    forged = _resign_payload(seal.sign_receipt(RECEIPT, SIGNED_XML), change)
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(forged, roots=[qpki.root.cert], certificates=qpki.bundle(seal))
    assert info.value.detail == "BAD_SIGNATURE"
    assert str(info.value) == "the receipt QR code could not be verified"


def test_another_bodys_seal_fails(qpki: QrPki) -> None:
    """The ward's own valid seal from the same CA signs a receipt naming the city's body."""
    hcm, ward = qpki.seal(HCM), qpki.seal(WARD)
    token = ward.sign_receipt(RECEIPT, SIGNED_XML)
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(token, roots=[qpki.root.cert], certificates=qpki.bundle(hcm, ward))
    assert info.value.detail == "SEAL_OF_ANOTHER_BODY"


def test_a_seal_stating_another_tax_code_fails(qpki: QrPki) -> None:
    seal = qpki.seal(HCM, tax_code="0309876543")
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(seal.sign_receipt(RECEIPT, SIGNED_XML), roots=[qpki.root.cert],
                  certificates=qpki.bundle(seal))
    assert info.value.detail == "SEAL_OF_ANOTHER_BODY"
    without = qpki.seal(HCM, tax_code=None)  # a seal stating no tax code: the agency code binds
    verify_qr(without.sign_receipt(RECEIPT, SIGNED_XML), roots=[qpki.root.cert],
              certificates=qpki.bundle(without))


def test_a_seal_from_a_foreign_ca_fails(qpki: QrPki) -> None:
    seal = qpki.seal(issuer=qpki.foreign_root)
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(seal.sign_receipt(RECEIPT, SIGNED_XML), roots=[qpki.root.cert],
                  certificates=[seal.certificate, qpki.foreign_root.cert, qpki.issuing.cert])
    assert info.value.detail == "SEAL_NOT_TRUSTED"


def test_an_expired_seal_at_issue_time_fails(qpki: QrPki) -> None:
    seal = qpki.seal(not_after=RECEIPT.issued_at - dt.timedelta(days=1))
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(seal.sign_receipt(RECEIPT, SIGNED_XML), roots=[qpki.root.cert],
                  certificates=qpki.bundle(seal))
    assert info.value.detail == "SEAL_NOT_TRUSTED"


def test_unknown_seal_and_swapped_header_fail(qpki: QrPki) -> None:
    hcm, other = qpki.seal(HCM), qpki.seal(HCM)
    token = hcm.sign_receipt(RECEIPT, SIGNED_XML)
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(token, roots=[qpki.root.cert], certificates=qpki.bundle(other))
    assert info.value.detail == "SEAL_UNKNOWN"
    # the header of another seal of the same body over this signature
    forged = other.sign_receipt(RECEIPT, SIGNED_XML).split(".")[0] + token[token.index("."):]
    with pytest.raises(ReceiptQrInvalid) as info:
        verify_qr(forged, roots=[qpki.root.cert], certificates=qpki.bundle(hcm, other))
    assert info.value.detail == "BAD_SIGNATURE"


def test_algorithm_confusion_fails(qpki: QrPki) -> None:
    seal = qpki.seal()
    head, body, sig = seal.sign_receipt(RECEIPT, SIGNED_XML).split(".")
    header = json.loads(unb64(head))
    for alg in ("PS256", "ES384", "none", "HS256"):
        header["alg"] = alg
        forged = f"{b64(json.dumps(header).encode())}.{body}.{sig}"
        with pytest.raises(ReceiptQrInvalid):
            verify_qr(forged, roots=[qpki.root.cert], certificates=qpki.bundle(seal))


@pytest.mark.parametrize("text", ["", "not a token", "a.b.c", "https://x/#..", "x" * 5000,
                                  "e30.e30.", "eyJ0eXAiOiJCTDEifQ.e30.AA"])
def test_malformed_texts_fail_cleanly(qpki: QrPki, text: str) -> None:
    with pytest.raises(ReceiptQrInvalid):
        verify_qr(text, roots=[qpki.root.cert], certificates=qpki.bundle())


def test_claims_round_trip() -> None:
    claims = claims_for(RECEIPT, SIGNED_XML)
    assert QrClaims.from_json(claims.to_json()) == claims
    extra = json.loads(claims.to_json())
    extra["x"] = 1
    with pytest.raises(ValueError):
        QrClaims.from_json(json.dumps(extra).encode())
    with pytest.raises(ValueError):
        QrClaims.from_json(dataclasses.replace(claims, total=True).to_json())  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm,alg", [(KeyAlgorithm.EC_P256, "ES256"),
                                           (KeyAlgorithm.RSA_2048, "PS256")])
def test_a_seal_key_in_a_pkcs11_token_signs_the_qr(qpki: QrPki, softhsm: SoftHsm,
                                                   algorithm: KeyAlgorithm, alg: str) -> None:
    """SoftHSM2: ECDSA through its raw mechanism (r||s re-encoded), RSA-PSS with a 32-byte salt."""
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    seal = qpki.seal(key=token.generate_key(softhsm.unique_label("seal"), algorithm))
    verified = verify_qr(seal.sign_receipt(RECEIPT, SIGNED_XML), roots=[qpki.root.cert],
                         certificates=qpki.bundle(seal))
    assert verified.algorithm == alg and verified.claims.total == RECEIPT.total
