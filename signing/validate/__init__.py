"""Verification of PDF, CMS and XML signatures with ETSI EN 319 102-1 indications and reports
(JSON, text, and the ETSI TS 119 102-2 XML report where pyHanko produces it)."""

from signing.sign.revocation import TrustSettings
from signing.validate.cms import validate_cms
from signing.validate.pdf import validate_pdf
from signing.validate.report import (
    Indication,
    SignatureResult,
    SignerIdentity,
    TimeSource,
    ValidationReport,
)
from signing.validate.xml import validate_xml

__all__ = [
    "Indication",
    "SignatureResult",
    "SignerIdentity",
    "TimeSource",
    "TrustSettings",
    "ValidationReport",
    "validate_cms",
    "validate_pdf",
    "validate_xml",
]
