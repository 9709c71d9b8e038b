"""Who is expected to have signed: an agency code, a tax code, or a subject policy, matched
against the signer's certificate.

A valid signature by *someone* is not enough for most e-documents: a receipt must be sealed by the
collecting body it names, a decision by the agency that issued it. Verifiers take an
:class:`ExpectedSigner` and fail with ``SIGNER_NOT_EXPECTED`` when the certificate says otherwise.

Where the identifiers are read from:

* agency code: this project's subject information extension (:mod:`signing.ca.extensions`); there
  is no standard place for it, and a human-readable subject attribute (OU, O) is not trusted for it;
* tax code (mã số thuế): the subject ``UID`` attribute (0.9.2342.19200300.100.1.1) in the form
  ``MST:<code>``, as Vietnamese public CAs write it for organisations; also the ETSI
  ``organizationIdentifier`` (2.5.4.97) in the form ``VATVN-<code>``;
* subject policy: exact values of subject attributes, by short name (``O``, ``OU``, ``CN``, ``L``,
  ``ST``, ``C``, ``serialNumber``, ``UID``, ``title``, ``organizationIdentifier``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

from signing.ca.extensions import read_subject_info
from signing.errors import InvalidInput

__all__ = ["ExpectedSigner", "SignerCheck", "certificate_tax_codes", "check_signer"]

_AGENCY = re.compile(r"^[A-Z0-9.]{1,35}$")
_TAX_CODE = re.compile(r"^[0-9]{10}(-[0-9]{3})?$")
_ATTRIBUTES: Mapping[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "UID": NameOID.USER_ID,
    "title": NameOID.TITLE,
    "organizationIdentifier": x509.ObjectIdentifier("2.5.4.97"),
}


@dataclass(frozen=True, slots=True)
class ExpectedSigner:
    """Who must have signed.

    ``agency_code`` and ``tax_code``: with ``require_all`` (the default) each one given must be in
    the certificate and equal. With ``require_all=False`` (for documents that name their issuer by
    both codes, such as receipts: a seal certificate may carry either) every given identifier that
    the certificate carries must be equal, and at least one must be carried. ``subject``: attribute
    short name -> exact value, always all required.
    """

    agency_code: str | None = None
    tax_code: str | None = None
    subject: Mapping[str, str] = field(default_factory=dict)
    require_all: bool = True

    def __post_init__(self) -> None:
        if self.agency_code is not None and not _AGENCY.fullmatch(self.agency_code):
            raise InvalidInput("expected agency code is malformed", reason="INVALID_EXPECTED_SIGNER")
        if self.tax_code is not None and not _TAX_CODE.fullmatch(self.tax_code):
            raise InvalidInput("expected tax code must be 10 digits, or 10-3 digits",
                               reason="INVALID_EXPECTED_SIGNER")
        unknown = sorted(set(self.subject) - set(_ATTRIBUTES))
        if unknown:
            raise InvalidInput(f"unknown subject attribute(s) {', '.join(unknown)}; known: "
                               f"{', '.join(_ATTRIBUTES)}", reason="INVALID_EXPECTED_SIGNER")
        if self.agency_code is None and self.tax_code is None and not self.subject:
            raise InvalidInput("an expected signer needs an agency code, a tax code or subject "
                               "attributes", reason="INVALID_EXPECTED_SIGNER")

    def describe(self) -> str:
        parts = []
        if self.agency_code:
            parts.append(f"agency code {self.agency_code}")
        if self.tax_code:
            parts.append(f"tax code {self.tax_code}")
        parts += [f"{k}={v}" for k, v in sorted(self.subject.items())]
        joiner = " and " if self.require_all else " or "
        return joiner.join(parts)


@dataclass(frozen=True, slots=True)
class SignerCheck:
    """The outcome of matching a certificate: ``ok``, and if not, why (one line per mismatch)."""

    ok: bool
    reasons: tuple[str, ...] = ()


def certificate_tax_codes(cert: x509.Certificate) -> tuple[str, ...]:
    """Tax codes the certificate's subject states (``UID=MST:...``, ``2.5.4.97=VATVN-...``)."""
    codes: list[str] = []
    for attr in cert.subject.get_attributes_for_oid(NameOID.USER_ID):
        value = str(attr.value).strip()
        if value.upper().startswith("MST:"):
            codes.append(value[4:].strip())
    for attr in cert.subject.get_attributes_for_oid(_ATTRIBUTES["organizationIdentifier"]):
        value = str(attr.value).strip()
        if value.upper().startswith("VATVN-"):
            codes.append(value[6:].strip())
    return tuple(codes)


def _agency_code(cert: x509.Certificate) -> str | None:
    try:
        info = read_subject_info(cert)
    except InvalidInput:
        return None
    return info.agency_code if info else None


def check_signer(cert: x509.Certificate, expected: ExpectedSigner) -> SignerCheck:
    """Whether ``cert`` belongs to the ``expected`` signer."""
    reasons: list[str] = []
    carried = 0
    agency = _agency_code(cert)
    if expected.agency_code is not None:
        if agency is None:
            if expected.require_all:
                reasons.append(f"the certificate names no agency code (expected "
                               f"{expected.agency_code})")
        else:
            carried += 1
            if agency != expected.agency_code:
                reasons.append(f"the certificate's agency code is {agency}, not "
                               f"{expected.agency_code}")
    if expected.tax_code is not None:
        codes = certificate_tax_codes(cert)
        if not codes:
            if expected.require_all:
                reasons.append(f"the certificate names no tax code (expected "
                               f"{expected.tax_code})")
        else:
            carried += 1
            if expected.tax_code not in codes:
                reasons.append(f"the certificate's tax code is {', '.join(codes)}, not "
                               f"{expected.tax_code}")
    if not expected.require_all and carried == 0 and (expected.agency_code or expected.tax_code):
        reasons.append(f"the certificate names neither the agency code nor the tax code of "
                       f"{expected.describe()}")
    for name, wanted in sorted(expected.subject.items()):
        values = [str(a.value) for a in cert.subject.get_attributes_for_oid(_ATTRIBUTES[name])]
        if wanted not in values:
            have = ", ".join(values) if values else "nothing"
            reasons.append(f"the certificate's subject {name} is {have}, not {wanted}")
    return SignerCheck(ok=not reasons, reasons=tuple(reasons))
