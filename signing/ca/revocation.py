"""Revocation reasons (RFC 5280 section 5.3.1) and the status rules of a subscriber certificate.

A certificate is VALID, ON_HOLD (revoked with ``certificateHold``, which can be released) or
REVOKED (for good). Permanent revocation is allowed from VALID and from ON_HOLD; a hold only from
VALID; a release only from ON_HOLD. Expiry is not a status: it follows from the time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from signing.errors import FailedPrecondition, InvalidInput

__all__ = [
    "CertificateStatus",
    "InvalidStatusChange",
    "RevocationEntry",
    "RevocationReason",
    "next_status",
]


class RevocationReason(StrEnum):
    """CRLReason values a subscriber revocation may carry (``removeFromCRL`` appears only in delta
    CRLs, written by the CA when a hold is released; ``caCompromise`` and ``aACompromise`` concern
    authorities, not subscribers)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"

    @property
    def code(self) -> int:
        """The CRLReason ENUMERATED value."""
        return _CODES[self]

    @property
    def flag(self) -> x509.ReasonFlags:
        return x509.ReasonFlags(self.value)

    @classmethod
    def from_code(cls, code: int) -> RevocationReason:
        for reason, value in _CODES.items():
            if value == code:
                return reason
        raise InvalidInput(f"CRLReason {code} cannot be requested for a subscriber certificate",
                           reason="INVALID_REVOCATION_REASON")


_CODES = {
    RevocationReason.UNSPECIFIED: 0, RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.AFFILIATION_CHANGED: 3, RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5, RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
}


class CertificateStatus(StrEnum):
    """A certificate's revocation status."""
    VALID = "valid"
    ON_HOLD = "on_hold"
    REVOKED = "revoked"


class InvalidStatusChange(FailedPrecondition):
    reason = "INVALID_STATUS_CHANGE"


def next_status(current: CertificateStatus, reason: RevocationReason | None) -> CertificateStatus:
    """The status after revoking with ``reason`` (``None``: releasing a hold); raises
    :class:`InvalidStatusChange` when the change is not allowed from ``current``."""
    if reason is None:
        if current is not CertificateStatus.ON_HOLD:
            raise InvalidStatusChange("only a certificate on hold can be released",
                                      reason="NOT_ON_HOLD")
        return CertificateStatus.VALID
    if current is CertificateStatus.REVOKED:
        raise InvalidStatusChange("the certificate is already revoked", reason="ALREADY_REVOKED")
    if reason is RevocationReason.CERTIFICATE_HOLD:
        if current is CertificateStatus.ON_HOLD:
            raise InvalidStatusChange("the certificate is already on hold",
                                      reason="ALREADY_ON_HOLD")
        return CertificateStatus.ON_HOLD
    return CertificateStatus.REVOKED


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One revoked (or held) certificate as CRLs and OCSP report it."""

    serial_number: int
    revoked_at: dt.datetime
    reason: RevocationReason
    invalidity_date: dt.datetime | None = None
