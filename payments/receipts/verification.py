"""Verifying a signed e-receipt: signed by the collecting body it names, read only from what is
signed.

A receipt's XMLDSig signature (:mod:`payments.receipts.signing`) proves that *someone* holding a
certificate of the CA signed the ``DLBLai`` element. That is not enough: any agency's seal from the
same CA makes a valid signature, and data outside the signed element (a forged copy where readers
look; XML signature wrapping), or comments inside it (which the signature does not cover:
``<STien>100<!---->000</STien>`` reads ``100`` to a naive reader), would change what is read
without breaking the signature. :func:`verify_receipt` therefore

1. verifies the one signature and requires it to cover the whole document (as
   :func:`~payments.receipts.signing.sign_document` signs) or ``/BLai/DLBLai``, with nothing
   imitating it (``SIGNATURE_WRAPPING``);
2. reads the receipt from the canonical signed data only (comments dropped), never from the
   document as received, and checks the stated total against the lines;
3. requires the seal's certificate to belong to the collecting body named in that signed data
   (``TCThu/MDVi`` agency code, ``TCThu/MST`` tax code): every identifier the certificate carries
   must be the receipt's, and it must carry at least one (``SIGNER_NOT_EXPECTED``);
4. validates the certificate to the trust anchors at the validation time: with a
   :class:`~signing.sign.revocation.TrustSettings`, with revocation (EN 319 102-1 indications, via
   :func:`signing.validate.validate_xml`); with a list of root certificates, offline, path and
   validity only (``UNTRUSTED_SIGNER``).

Any failure raises :class:`ReceiptNotVerified` with its own ``reason`` and a message safe to show.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from lxml import etree

from payments.errors import InvalidInput
from payments.receipts.model import Organisation, ReceiptData
from payments.receipts.xml1271 import DATA_ID, parse_receipt_xml

if TYPE_CHECKING:
    from signing.sign.expected import ExpectedSigner
    from signing.sign.revocation import TrustSettings

__all__ = ["SIGNED_PATH", "ReceiptNotVerified", "SignedReceipt", "VerifiedReceipt",
           "read_signed_receipt", "verify_receipt"]

SIGNED_PATH = f"/BLai/{DATA_ID}"
_SIGNED_PATHS = ("/", SIGNED_PATH)  # the whole document (as this project signs), or DLBLai


class ReceiptNotVerified(InvalidInput):
    """The receipt does not verify; ``reason`` says which check failed:

    ``NOT_A_RECEIPT``, ``SIGNATURE_INVALID``, ``SIGNATURE_WRAPPING``, ``SIGNER_NOT_EXPECTED``,
    ``UNTRUSTED_SIGNER`` (with ``metadata["indication"]``/``["sub_indication"]`` when validated
    with revocation), ``RECEIPT_INCONSISTENT``.
    """

    reason = "RECEIPT_NOT_VERIFIED"


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt that verified, with every field read from the signed data."""

    receipt: ReceiptData
    signed_data: bytes  # canonical signed data: ``BLai`` without the signature, or ``DLBLai``
    signed_sha256: str  # hex SHA-256 of ``signed_data``
    document_sha256: str  # hex SHA-256 of the bytes verified (the QR's ``h``)
    signed_path: str  # "/" (the whole document) or "/BLai/DLBLai"
    signer: x509.Certificate
    signer_subject: str
    signer_agency_code: str | None
    signer_tax_codes: tuple[str, ...]
    signing_time: dt.datetime | None
    validation_time: dt.datetime

    @property
    def collector(self) -> Organisation:
        return self.receipt.collector

    @property
    def total(self) -> int:
        return self.receipt.total


def _fail(reason: str, message: str, **metadata: str) -> ReceiptNotVerified:
    return ReceiptNotVerified(message, reason=reason, metadata=metadata or None)


def _receipt_from(signed_root: etree._Element) -> ReceiptData:
    """Parse the signed ``BLai`` or ``DLBLai`` (comments and PIs already dropped) as a receipt."""
    if signed_root.tag == "BLai":
        document = signed_root
        data = signed_root.find(DATA_ID)
        if data is None:
            raise _fail("NOT_A_RECEIPT", "the signed document has no receipt data")
    elif signed_root.tag == DATA_ID:
        data = signed_root
        document = etree.Element("BLai")
        document.append(signed_root)
    else:
        raise _fail("NOT_A_RECEIPT", "the signed element is not a receipt")
    try:
        receipt = parse_receipt_xml(etree.tostring(document))
    except (InvalidInput, ValueError, KeyError, OverflowError) as exc:
        raise _fail("NOT_A_RECEIPT", "the signed data is not a readable receipt") from exc
    stated = data.findtext("NDBLai/TToan/TgTien")
    if stated is None or not stated.strip().isdigit() or len(stated.strip()) > 18 \
            or int(stated) != receipt.total:
        raise _fail("RECEIPT_INCONSISTENT", "the stated total is not the sum of the lines")
    return receipt


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt whose signature verifies with the certificate it carries, covers the receipt
    alone, and is the seal of the collecting body it names (steps 1 to 3 of the module
    documentation): the certificate's path to a trust anchor is *not* yet judged. What
    :func:`read_signed_receipt` returns, to find the receipt (in a register, say) before
    choosing the time to judge it at with :func:`verify_receipt`."""

    receipt: ReceiptData
    signed_data: bytes
    signed_sha256: str
    document_sha256: str
    signed_path: str
    signer: x509.Certificate
    signing_time: dt.datetime | None


def read_signed_receipt(xml: bytes) -> SignedReceipt:
    """Steps 1 to 3 of :func:`verify_receipt`: the signature, what it covers, the receipt read
    from the signed data, and the seal bound to the collecting body it names; raises
    :class:`ReceiptNotVerified` as :func:`verify_receipt` does. The seal is not trusted yet."""
    from signing.errors import SigningError
    from signing.sign.errors import SignatureInvalid
    from signing.sign.expected import check_signer
    from signing.sign.xmldsig import inspect_xml

    try:
        signatures = inspect_xml(xml)
    except SignatureInvalid as exc:
        raise _fail("SIGNATURE_INVALID", "the receipt's signature does not verify") from exc
    except SigningError as exc:
        raise _fail("NOT_A_RECEIPT", "the receipt is not well-formed XML") from exc
    if len(signatures) != 1:
        raise _fail("NOT_A_RECEIPT", "a receipt carries exactly one signature")
    [signed] = signatures
    element = signed.signed_element
    if signed.imitations or element is None or element.path not in _SIGNED_PATHS:
        raise _fail("SIGNATURE_WRAPPING",
                    f"the signature does not cover the receipt ({SIGNED_PATH}) alone: data "
                    "outside what is signed imitates it")
    receipt = _receipt_from(signed.signed_tree())
    expected = _expected(receipt)
    check = check_signer(signed.signer, expected)
    if not check.ok:
        raise _fail("SIGNER_NOT_EXPECTED",
                    f"the receipt is not sealed by the collecting body it names "
                    f"({receipt.collector.name}, {expected.describe()}): "
                    + "; ".join(check.reasons))
    return SignedReceipt(receipt=receipt, signed_data=signed.signed_data,
                         signed_sha256=hashlib.sha256(signed.signed_data).hexdigest(),
                         document_sha256=hashlib.sha256(xml).hexdigest(),
                         signed_path=element.path, signer=signed.signer,
                         signing_time=signed.signing_time)


def _expected(receipt: ReceiptData) -> ExpectedSigner:
    from signing.errors import SigningError
    from signing.sign.expected import ExpectedSigner  # noqa: F811 - at run time

    collector = receipt.collector
    try:
        return ExpectedSigner(agency_code=collector.agency_code or None,
                              tax_code=collector.tax_code or None, require_all=False)
    except SigningError as exc:
        raise _fail("NOT_A_RECEIPT", "the receipt names no valid collecting body") from exc


def verify_receipt(xml: bytes, *, trust: TrustSettings | Sequence[x509.Certificate],
                   at: dt.datetime | None = None) -> VerifiedReceipt:
    """Verify a signed receipt (see the module documentation) and return what it says.

    ``trust``: a :class:`~signing.sign.revocation.TrustSettings` (path and revocation, fetched as
    those settings allow), or a sequence of trusted root certificates (offline: path and validity
    at ``at`` only). ``at``: the validation time (default: now; the signing time a receipt
    states is the signer's claim, not a proof of existence).
    """
    from signing.sign.errors import SignatureInvalid
    from signing.sign.expected import certificate_tax_codes
    from signing.sign.revocation import TrustSettings  # noqa: F811 - at run time
    from signing.sign.xmldsig import verify_xml
    from signing.validate.identity import signer_identity

    if at is not None and at.tzinfo is None:
        raise InvalidInput("the validation time must be timezone-aware")
    signed = read_signed_receipt(xml)
    moment = at or dt.datetime.now(dt.UTC)
    if isinstance(trust, TrustSettings):
        from signing.validate import Indication, validate_xml

        try:
            [result] = validate_xml(xml, trust=trust, at=moment,
                                    expected_signer=_expected(signed.receipt)).signatures
        except OverflowError as exc:
            raise _fail("UNTRUSTED_SIGNER", "the seal's certificate cannot be judged at "
                        "that time") from exc
        if result.indication is not Indication.TOTAL_PASSED:
            raise _fail("UNTRUSTED_SIGNER", "the seal's certificate is not valid: "
                        + (result.messages[0] if result.messages else result.indication.value),
                        indication=result.indication.value,
                        sub_indication=result.sub_indication or "")
    else:
        roots = list(trust) if isinstance(trust, Sequence) else None
        if not roots or not all(isinstance(r, x509.Certificate) for r in roots):
            raise InvalidInput("trust must be TrustSettings or a list of root certificates")
        try:
            verify_xml(xml, trust_roots=roots, at=moment)
        except (SignatureInvalid, OverflowError) as exc:
            raise _fail("UNTRUSTED_SIGNER", "the seal's certificate does not chain to a trusted "
                        "root, or was not valid at the validation time") from exc

    identity = signer_identity(signed.signer)
    return VerifiedReceipt(
        receipt=signed.receipt, signed_data=signed.signed_data,
        signed_sha256=signed.signed_sha256, document_sha256=signed.document_sha256,
        signed_path=signed.signed_path, signer=signed.signer, signer_subject=identity.subject,
        signer_agency_code=identity.agency_code,
        signer_tax_codes=certificate_tax_codes(signed.signer),
        signing_time=signed.signing_time, validation_time=moment)
