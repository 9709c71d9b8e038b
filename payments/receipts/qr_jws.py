"""The signed QR code of a receipt: a compact JWS (RFC 7515 §7.1; algorithms of RFC 7518 §3)
by the collecting body's seal over the receipt's identifying fields, verifiable offline.

Format ``BL1`` (published in docs/payments.md, "Receipt QR codes")::

    [<verify page URL>#]<BASE64URL(header)>.<BASE64URL(payload)>.<BASE64URL(signature)>

    header  {"typ":"BL1","alg":"ES256"|"ES384"|"PS256","x5t#S256":<SHA-256 of the seal cert DER>}
    payload {"k":"EBL01","s":"25T","n":"0000001","d":"2025-08-01T09:00:00",
             "b":<agency code>,"m":<tax code>,"p":<payer reference>,"t":<total, đồng>,
             "h":<BASE64URL(SHA-256 of the signed receipt XML)>}

The algorithm follows the seal's key: ES256 for an EC P-256 key (the default; a 64-byte
signature keeps the QR near version 17), ES384 for P-384, PS256 (RSASSA-PSS, SHA-256, 32-byte
salt) for an RSA key (the QR grows with the modulus: 342 characters of signature for RSA-2048).
``d`` is the issue date-time in Vietnam time (GMT+7) as in the XML's ``TGLap``; ``p`` is the payer
identifier printed on the receipt (tax code, else personal ID number, else empty).

Verifying needs no network: the seal certificate is found by its thumbprint among certificates
the verifier holds (an untrusted bundle: the published seal certificates and their issuing CAs),
its path is validated to a trusted root (the national root) at the receipt's issue time, its
key usage must allow digital signatures, and the certificate must name the collecting body the
QR names: its ``VnegovSubjectInfo`` agency code must equal ``b`` and, when its subject carries a
tax code (``UID=MST:<code>``, the convention of Vietnamese CAs), it must equal ``m``. A QR
re-signed by another body's seal, or with any field changed, fails. Revocation and later
corrections (cancelled, replaced) are not visible offline: the online lookup answers them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

from payments.errors import InvalidInput, ReceiptQrInvalid
from payments.money import VN_TZ
from payments.receipts.model import ReceiptData, format_number

__all__ = [
    "QR_FORMAT",
    "QrClaims",
    "QrSeal",
    "VerifiedQr",
    "claims_for",
    "qr_text",
    "seal_names_body",
    "token_from_text",
    "verify_qr",
]

QR_FORMAT = "BL1"
_MAX_TOKEN = 2048
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_FIELDS = frozenset("ksndbmpth")
# alg -> (curve or None for RSA-PSS, hash, coordinate size in bytes)
_ALGS: dict[str, tuple[str | None, type[hashes.HashAlgorithm], int]] = {
    "ES256": (ec.SECP256R1.name, hashes.SHA256, 32),
    "ES384": (ec.SECP384R1.name, hashes.SHA384, 48),
    "PS256": (None, hashes.SHA256, 0),
}
_TAX_UID = re.compile(r"^MST:\s*([0-9-]{10,14})$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _thumbprint(certificate: x509.Certificate) -> str:
    return _b64(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest())


@dataclass(frozen=True, slots=True)
class QrClaims:
    """The receipt fields a QR carries (all signed)."""

    template: str
    series: str
    number: int
    issued_at: dt.datetime  # aware; written in Vietnam time to the second
    agency_code: str
    tax_code: str
    payer_ref: str
    total: int
    xml_sha256: bytes  # 32 bytes

    @property
    def label(self) -> str:
        return f"{self.template}-{self.series}-{format_number(self.number)}"

    @property
    def xml_sha256_hex(self) -> str:
        return self.xml_sha256.hex()

    def to_json(self) -> bytes:
        local = self.issued_at.astimezone(VN_TZ).replace(tzinfo=None, microsecond=0)
        return json.dumps({
            "k": self.template, "s": self.series, "n": format_number(self.number),
            "d": local.isoformat(), "b": self.agency_code, "m": self.tax_code,
            "p": self.payer_ref, "t": self.total, "h": _b64(self.xml_sha256),
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> QrClaims:
        value: Any = json.loads(data.decode("utf-8"))
        if not isinstance(value, dict) or set(value) != _FIELDS:
            raise ValueError("unexpected payload fields")
        strings = {k: value[k] for k in "ksndbmph"}
        if not all(isinstance(v, str) for v in strings.values()):
            raise ValueError("payload fields must be strings")
        total = value["t"]
        if not isinstance(total, int) or isinstance(total, bool):
            raise ValueError("the total must be an integer")
        if not re.fullmatch(r"[0-9]{7}", value["n"]):
            raise ValueError("the number has 7 digits")
        digest = _unb64(value["h"])
        if len(digest) != 32:
            raise ValueError("the XML hash is a SHA-256")
        issued = dt.datetime.fromisoformat(value["d"])
        if issued.tzinfo is not None:
            raise ValueError("the issue time is Vietnam time without an offset")
        return cls(value["k"], value["s"], int(value["n"]), issued.replace(tzinfo=VN_TZ),
                   value["b"], value["m"], value["p"], total, digest)


def claims_for(receipt: ReceiptData, signed_xml: bytes) -> QrClaims:
    """The QR fields of ``receipt`` whose signed XML is ``signed_xml``."""
    payer = receipt.payer.tax_code or receipt.payer.id_number or ""
    return QrClaims(receipt.template, receipt.series, receipt.number,
                    receipt.issued_at.replace(microsecond=0), receipt.collector.agency_code,
                    receipt.collector.tax_code, payer, receipt.total,
                    hashlib.sha256(signed_xml).digest())


class QrSeal:
    """Signs receipt QR payloads with a collecting body's seal key (a cryptography key object,
    or a PKCS#11 token key that behaves as one)."""

    def __init__(self, key: Any, certificate: x509.Certificate) -> None:
        public = certificate.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            names = {ec.SECP256R1.name: "ES256", ec.SECP384R1.name: "ES384"}
            alg = names.get(public.curve.name)
            if alg is None:
                raise InvalidInput("a receipt QR seal needs an EC key on P-256 or P-384, or RSA",
                                   reason="UNSUPPORTED_KEY")
        elif isinstance(public, rsa.RSAPublicKey):
            alg = "PS256"
        else:
            raise InvalidInput("a receipt QR seal needs an EC or RSA key", reason="UNSUPPORTED_KEY")
        if key.public_key().public_numbers() != public.public_numbers():
            raise InvalidInput("the seal key does not belong to the certificate",
                               reason="SIGNER_MISMATCH")
        self.key = key
        self.certificate = certificate
        self.alg = alg
        header = {"typ": QR_FORMAT, "alg": alg, "x5t#S256": _thumbprint(certificate)}
        self._header = _b64(json.dumps(header, separators=(",", ":")).encode("ascii"))

    def sign(self, claims: QrClaims) -> str:
        """The compact JWS of ``claims``."""
        signing_input = f"{self._header}.{_b64(claims.to_json())}"
        curve, hash_type, size = _ALGS[self.alg]
        if curve is None:
            signature = self.key.sign(signing_input.encode("ascii"),
                                      padding.PSS(padding.MGF1(hash_type()), padding.PSS.DIGEST_LENGTH),
                                      hash_type())
        else:
            der = self.key.sign(signing_input.encode("ascii"), ec.ECDSA(hash_type()))
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return f"{signing_input}.{_b64(signature)}"

    def sign_receipt(self, receipt: ReceiptData, signed_xml: bytes) -> str:
        return self.sign(claims_for(receipt, signed_xml))


def qr_text(token: str, page_url: str = "") -> str:
    """What the QR encodes: the token, after ``<page_url>#`` when a verification page is
    published (a phone's camera opens the page, which verifies the fragment in the browser; a
    fragment is never sent to the server)."""
    return f"{page_url}#{token}" if page_url else token


def token_from_text(text: str) -> str:
    """The compact JWS inside a decoded QR text (a bare token or ``<url>#<token>``)."""
    token = text.strip().rsplit("#", 1)[-1]
    if len(token) > _MAX_TOKEN or token.count(".") != 2:
        raise ReceiptQrInvalid("NOT_A_RECEIPT_QR")
    return token


@dataclass(frozen=True, slots=True)
class VerifiedQr:
    """A receipt QR that verified: its signed fields, the algorithm, the seal and its chain."""

    claims: QrClaims
    algorithm: str
    seal: x509.Certificate  # the collecting body's seal certificate
    chain: tuple[x509.Certificate, ...]  # from the seal to the trusted root

    @property
    def seal_subject(self) -> str:
        return self.seal.subject.rfc4514_string()


def seal_tax_code(certificate: x509.Certificate) -> str | None:
    """The tax code a certificate's subject states as ``UID=MST:<code>``, if any."""
    for attr in certificate.subject.get_attributes_for_oid(NameOID.USER_ID):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
        found = _TAX_UID.fullmatch(value.strip())
        if found:
            return found.group(1)
    return None


def seal_names_body(certificate: x509.Certificate, agency_code: str, tax_code: str) -> bool:
    """Whether ``certificate`` is the seal of the body with ``agency_code`` (and ``tax_code``
    when the certificate states one)."""
    from signing.ca.extensions import read_subject_info

    try:
        info = read_subject_info(certificate)
    except Exception:  # a malformed extension names nobody
        return False
    if info is None or not info.agency_code or info.agency_code != agency_code:
        return False
    stated = seal_tax_code(certificate)
    return stated is None or stated == tax_code


def _path(seal: x509.Certificate, roots: Sequence[x509.Certificate],
          certificates: Sequence[x509.Certificate], at: dt.datetime) -> tuple[x509.Certificate, ...]:
    from asn1crypto import x509 as asn1_x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathError, ValidationError

    from signing.sign._aio import run

    def load(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    context = ValidationContext(trust_roots=[load(c) for c in roots], moment=at,
                                allow_fetching=False, revocation_mode="soft-fail")
    validator = CertificateValidator(load(seal), [load(c) for c in certificates if c != seal],
                                     validation_context=context)
    try:
        path = run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]
    except (PathError, ValidationError, ValueError) as exc:
        raise ReceiptQrInvalid("SEAL_NOT_TRUSTED") from exc
    return tuple(x509.load_der_x509_certificate(c.dump()) for c in reversed(list(path)))


def verify_qr(text: str, *, roots: Sequence[x509.Certificate],
              certificates: Sequence[x509.Certificate], at: dt.datetime | None = None
              ) -> VerifiedQr:
    """Verify a receipt QR offline. ``text`` is what the QR decodes to; ``roots`` the trusted
    roots (the national root); ``certificates`` the seal certificates and issuing CAs the
    verifier holds (untrusted: only a path to a root counts). The path is validated at ``at``,
    by default the receipt's issue time. Raises :class:`ReceiptQrInvalid` (one opaque error;
    its ``detail`` says which check failed)."""
    token = token_from_text(text)
    head64, body64, sig64 = token.split(".")
    try:
        header: Any = json.loads(_unb64(head64))
        claims = QrClaims.from_json(_unb64(body64))
        signature = _unb64(sig64)
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        # RecursionError: JSON nested deeper than the parser allows (fits in a QR)
        raise ReceiptQrInvalid("MALFORMED") from None
    if not isinstance(header, dict) or header.get("typ") != QR_FORMAT or \
            set(header) != {"typ", "alg", "x5t#S256"} or not isinstance(header["alg"], str) \
            or header["alg"] not in _ALGS or not isinstance(header["x5t#S256"], str):
        raise ReceiptQrInvalid("UNSUPPORTED_HEADER")
    thumb = header["x5t#S256"]
    seal = next((c for c in certificates if _thumbprint(c) == thumb), None)
    if seal is None:
        raise ReceiptQrInvalid("SEAL_UNKNOWN")
    alg = header["alg"]
    curve, hash_type, size = _ALGS[alg]
    public = seal.public_key()
    data = f"{head64}.{body64}".encode("ascii")
    try:
        if curve is None:
            if not isinstance(public, rsa.RSAPublicKey):
                raise ReceiptQrInvalid("ALGORITHM_MISMATCH")
            public.verify(signature, data, padding.PSS(padding.MGF1(hash_type()),
                                                       padding.PSS.DIGEST_LENGTH), hash_type())
        else:
            if not isinstance(public, ec.EllipticCurvePublicKey) or \
                    public.curve.name != curve or len(signature) != 2 * size:
                raise ReceiptQrInvalid("ALGORITHM_MISMATCH")
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            public.verify(der, data, ec.ECDSA(hash_type()))
    except InvalidSignature:
        raise ReceiptQrInvalid("BAD_SIGNATURE") from None
    if not seal_names_body(seal, claims.agency_code, claims.tax_code):
        raise ReceiptQrInvalid("SEAL_OF_ANOTHER_BODY")
    chain = _path(seal, roots, certificates, at or claims.issued_at)
    return VerifiedQr(claims, alg, seal, chain)
