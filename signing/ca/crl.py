"""Certificate revocation lists (RFC 5280 section 5): full CRLs and delta CRLs.

A full CRL lists every certificate of the issuer that is revoked or on hold and has not expired
(expired certificates may leave the list, RFC 5280 section 3.3), with a CRL number that never goes
back, and points to the newest delta CRL (freshestCRL). A delta CRL carries the critical
deltaCRLIndicator naming the full CRL it extends and lists what changed since then: new
revocations and holds, and ``removeFromCRL`` for holds that were released.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from signing.ca.keys import signature_hash
from signing.ca.revocation import RevocationEntry
from signing.errors import InvalidInput

__all__ = ["CrlChange", "build_delta_crl", "build_full_crl"]


@dataclass(frozen=True, slots=True)
class CrlChange:
    """A line of a delta CRL: a revocation or hold (``entry``) or a released hold
    (``removed_serial``, listed with reason removeFromCRL)."""

    entry: RevocationEntry | None = None
    removed_serial: int | None = None
    removed_at: dt.datetime | None = None


def _revoked(entry: RevocationEntry) -> x509.RevokedCertificate:
    builder = (x509.RevokedCertificateBuilder().serial_number(entry.serial_number)
               .revocation_date(entry.revoked_at))
    if entry.reason.code != 0:  # RFC 5280: the reason code unspecified SHOULD be absent
        builder = builder.add_extension(x509.CRLReason(entry.reason.flag), critical=False)
    if entry.invalidity_date is not None:
        builder = builder.add_extension(x509.InvalidityDate(entry.invalidity_date.replace(
            tzinfo=None)), critical=False)
    return builder.build()


def _base(issuer: x509.Certificate, number: int, this_update: dt.datetime,
          next_update: dt.datetime) -> x509.CertificateRevocationListBuilder:
    if number < 0 or number.bit_length() > 159:
        raise InvalidInput("CRL numbers are non-negative and at most 20 octets",
                           reason="INVALID_CRL_NUMBER")
    if next_update <= this_update:
        raise InvalidInput("nextUpdate must be after thisUpdate", reason="INVALID_CRL_TIMES")
    return (x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(this_update.replace(microsecond=0))
            .next_update(next_update.replace(microsecond=0))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.public_key()), critical=False)  # type: ignore[arg-type]
            .add_extension(x509.CRLNumber(number), critical=False))


def build_full_crl(issuer: x509.Certificate, key: CertificateIssuerPrivateKeyTypes, *,
                   entries: Iterable[RevocationEntry], number: int, this_update: dt.datetime,
                   next_update: dt.datetime, delta_url: str | None = None
                   ) -> x509.CertificateRevocationList:
    """A full CRL signed by ``key`` for ``issuer``, listing ``entries``, with its number and update times (and
    a pointer to the delta CRL)."""
    builder = _base(issuer, number, this_update, next_update)
    if delta_url:
        builder = builder.add_extension(x509.FreshestCRL([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(delta_url)], relative_name=None,
            reasons=None, crl_issuer=None)]), critical=False)
    for entry in sorted(entries, key=lambda e: e.serial_number):
        builder = builder.add_revoked_certificate(_revoked(entry))
    return builder.sign(key, signature_hash(key))


def build_delta_crl(issuer: x509.Certificate, key: CertificateIssuerPrivateKeyTypes, *,
                    changes: Iterable[CrlChange], number: int, base_number: int,
                    this_update: dt.datetime, next_update: dt.datetime
                    ) -> x509.CertificateRevocationList:
    """A delta CRL over the full CRL numbered ``base_number``; ``number`` shares the sequence of
    full CRL numbers (RFC 5280 section 5.2.3) and is greater than ``base_number``."""
    if number <= base_number:
        raise InvalidInput("a delta CRL's number must exceed its base CRL's",
                           reason="INVALID_CRL_NUMBER")
    builder = _base(issuer, number, this_update, next_update).add_extension(
        x509.DeltaCRLIndicator(base_number), critical=True)
    lines: dict[int, x509.RevokedCertificate] = {}
    for change in changes:  # later changes of the same serial win
        if change.entry is not None:
            lines[change.entry.serial_number] = _revoked(change.entry)
        elif change.removed_serial is not None:
            when = change.removed_at or this_update
            lines[change.removed_serial] = (
                x509.RevokedCertificateBuilder().serial_number(change.removed_serial)
                .revocation_date(when)
                .add_extension(x509.CRLReason(x509.ReasonFlags.remove_from_crl), critical=False)
                .build())
    for serial in sorted(lines):
        builder = builder.add_revoked_certificate(lines[serial])
    return builder.sign(key, signature_hash(key))
