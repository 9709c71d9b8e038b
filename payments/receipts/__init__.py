"""Signed e-receipts: numbering, XML (QĐ 1271 conventions), signing port, PDF with a
verification QR, corrections, transmission to the tax authority, usage report."""

from payments.receipts.model import (
    MAX_NUMBER,
    Organisation,
    ReceiptData,
    ReceiptKind,
    ReceiptLine,
    RelatedReceipt,
    check_gapless,
    format_number,
    group_lines,
    next_number,
    series_for,
    validate_template,
)
from payments.receipts.qr_jws import (
    QR_FORMAT,
    QrClaims,
    QrSeal,
    VerifiedQr,
    claims_for,
    qr_text,
    token_from_text,
    verify_qr,
)
from payments.receipts.report import UsageLine, UsageReport, usage_report
from payments.receipts.signing import XmlSigner, document_digest, sign_document
from payments.receipts.transmission import (
    Acknowledgement,
    TaxAuthoritySimulator,
    TaxAuthorityTransport,
    build_envelope,
    new_message_id,
    parse_acknowledgement,
)
from payments.receipts.xml1271 import (
    build_cancellation_xml,
    build_receipt_xml,
    parse_receipt_xml,
)

__all__ = [
    "MAX_NUMBER",
    "QR_FORMAT",
    "Acknowledgement",
    "Organisation",
    "QrClaims",
    "QrSeal",
    "ReceiptData",
    "ReceiptKind",
    "ReceiptLine",
    "RelatedReceipt",
    "TaxAuthoritySimulator",
    "TaxAuthorityTransport",
    "UsageLine",
    "UsageReport",
    "VerifiedQr",
    "XmlSigner",
    "build_cancellation_xml",
    "build_envelope",
    "build_receipt_xml",
    "check_gapless",
    "claims_for",
    "document_digest",
    "format_number",
    "group_lines",
    "new_message_id",
    "next_number",
    "parse_acknowledgement",
    "parse_receipt_xml",
    "qr_text",
    "series_for",
    "sign_document",
    "token_from_text",
    "usage_report",
    "validate_template",
    "verify_qr",
]
