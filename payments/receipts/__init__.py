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
    "Acknowledgement",
    "Organisation",
    "ReceiptData",
    "ReceiptKind",
    "ReceiptLine",
    "RelatedReceipt",
    "TaxAuthoritySimulator",
    "TaxAuthorityTransport",
    "UsageLine",
    "UsageReport",
    "XmlSigner",
    "build_cancellation_xml",
    "build_envelope",
    "build_receipt_xml",
    "check_gapless",
    "document_digest",
    "format_number",
    "group_lines",
    "new_message_id",
    "next_number",
    "parse_acknowledgement",
    "parse_receipt_xml",
    "series_for",
    "sign_document",
    "usage_report",
    "validate_template",
]
