"""Validity periods: new certificates, renewals, and the limits of Decree 68/2024/NĐ-CP.

A subscriber certificate is valid for at most 5 years (the profile's ``max``); a renewal keeps the
key and moves notAfter later by at most 3 years, may be asked for only while enough validity
remains, and only as many times as the profile's renewal rules allow. No certificate outlives its
issuer: a period that would is shortened to end with the issuer's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from signing.ca.profiles import CertificateProfile
from signing.errors import FailedPrecondition, InvalidInput

__all__ = [
    "RenewalRefused",
    "Validity",
    "ValidityTooLong",
    "new_validity",
    "renewal_validity",
]

_DAY = dt.timedelta(days=1)


class ValidityTooLong(InvalidInput):
    reason = "VALIDITY_TOO_LONG"


class RenewalRefused(FailedPrecondition):
    """The certificate may not be renewed now (limit reached, too late, revoked, ...)."""

    reason = "RENEWAL_NOT_ALLOWED"


@dataclass(frozen=True, slots=True)
class Validity:
    """A certificate's validity period (UTC)."""
    not_before: dt.datetime
    not_after: dt.datetime


def _start(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise InvalidInput("instants must be timezone-aware", reason="NAIVE_DATETIME")
    return now.astimezone(dt.UTC).replace(microsecond=0)


def new_validity(profile: CertificateProfile, *, now: dt.datetime, days: int | None,
                 issuer_not_after: dt.datetime) -> Validity:
    """The validity of a new certificate: ``days`` (default: the profile's) from ``now``."""
    start = _start(now)
    if days is not None and days <= 0:
        raise InvalidInput("validity must be at least one day", reason="INVALID_VALIDITY")
    wanted = profile.default_validity_days if days is None else days
    if wanted > profile.max_validity_days:
        raise ValidityTooLong(
            f"profile {profile.id} allows at most {profile.max_validity_days} days of validity",
            metadata={"max_days": str(profile.max_validity_days)})
    end = min(start + wanted * _DAY, issuer_not_after)
    if end <= start:
        raise FailedPrecondition("the issuing CA certificate has expired",
                                 reason="ISSUER_EXPIRED")
    return Validity(start, end)


def renewal_validity(profile: CertificateProfile, *, now: dt.datetime, not_after: dt.datetime,
                     renewals_so_far: int, extension_days: int | None,
                     issuer_not_after: dt.datetime) -> Validity:
    """The validity of the renewal of a certificate that ends at ``not_after``.

    The new certificate starts now and ends ``extension_days`` (default: the most the rules allow)
    after the old one, but never more than the profile's maximum validity from now.
    """
    start = _start(now)
    rules = profile.renewal
    if renewals_so_far >= rules.max_renewals:
        raise RenewalRefused(
            f"profile {profile.id} allows {rules.max_renewals} renewal(s); this certificate has "
            f"had {renewals_so_far} (ask for a new certificate instead)",
            reason="RENEWAL_LIMIT_REACHED", metadata={"max_renewals": str(rules.max_renewals)})
    remaining = not_after - start
    if remaining < rules.min_remaining_days * _DAY:
        raise RenewalRefused(
            f"a renewal must be requested while at least {rules.min_remaining_days} days of "
            "validity remain (ask for a new certificate instead)",
            reason="RENEWAL_TOO_LATE", metadata={"min_remaining_days":
                                                 str(rules.min_remaining_days)})
    wanted = rules.max_extension_days if extension_days is None else extension_days
    if wanted <= 0:
        raise InvalidInput("a renewal must extend the validity", reason="INVALID_VALIDITY")
    if wanted > rules.max_extension_days:
        raise ValidityTooLong(f"a renewal may extend validity by at most "
                              f"{rules.max_extension_days} days",
                              metadata={"max_days": str(rules.max_extension_days)})
    end = min(not_after + wanted * _DAY, start + profile.max_validity, issuer_not_after)
    if end <= not_after:
        raise RenewalRefused("the renewal would not extend the validity (the issuing CA "
                             "certificate or the maximum validity is reached)",
                             reason="RENEWAL_WOULD_NOT_EXTEND")
    return Validity(start, end)
