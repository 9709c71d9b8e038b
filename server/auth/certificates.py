"""Verification of client certificates presented on the mutual-TLS gRPC port.

The TLS front accepts any certificate the client can prove it holds the key for and hands the
chain here, so that every failure becomes an UNAUTHENTICATED answer with an audit record instead of
a dropped connection. Verification builds a path to the configured trust anchors with cryptography's
RFC 5280 verifier (client-auth EKU required), then reads the agency and province from the
certificate's subject-information extension.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from server.auth.caller import AuthMethod, Caller, PermissionTable
from server.errors import NotAuthenticated
from signing.ca.extensions import read_subject_info
from signing.errors import SigningError

__all__ = [
    "ClientCertificateVerifier",
    "RevocationChecker",
    "VerifiedCertificate",
    "describe_certificate",
]


# Web-PKI defaults, except that a client certificate need not carry a subjectAltName: a calling
# system is identified by its subject and the subject-information extension, not by a host name.
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


class RevocationChecker(Protocol):
    """Answers whether a certificate issued by this server's CA has been revoked."""

    def is_revoked(self, issuer: x509.Name, serial_number: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class VerifiedCertificate:
    leaf: x509.Certificate
    caller: Caller


class ClientCertificateVerifier:
    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate],
        permissions: PermissionTable,
        revocation: RevocationChecker | None = None,
    ) -> None:
        if not roots:
            raise ValueError("at least one trust anchor is needed for client certificates")
        self._store = Store(list(roots))
        self._intermediates = list(intermediates)
        self._permissions = permissions
        self._revocation = revocation

    def check_revocation(self, leaf: x509.Certificate) -> None:
        """Raise :class:`NotAuthenticated` if the certificate has been revoked."""
        if self._revocation is not None and self._revocation.is_revoked(
            leaf.issuer, leaf.serial_number
        ):
            raise NotAuthenticated("CERTIFICATE_REVOKED")

    def verify(
        self, leaf: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> VerifiedCertificate:
        """Verify ``leaf`` (with the intermediates the client sent in ``chain``) at ``now``.

        Raises :class:`NotAuthenticated` whose ``detail`` names the cause.
        """
        if leaf is None:
            raise NotAuthenticated("NO_CLIENT_CERTIFICATE")
        if now < leaf.not_valid_before_utc:
            raise NotAuthenticated("CERTIFICATE_NOT_YET_VALID")
        if now > leaf.not_valid_after_utc:
            raise NotAuthenticated("CERTIFICATE_EXPIRED")
        verifier = (PolicyBuilder().store(self._store).time(now)
                    .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
                    .build_client_verifier())
        try:
            verifier.verify(leaf, [c for c in chain if c != leaf] + self._intermediates)
        except VerificationError:
            raise NotAuthenticated("CERTIFICATE_UNTRUSTED") from None
        self.check_revocation(leaf)
        try:
            info = read_subject_info(leaf)
        except SigningError:
            info = None
        if info is None or not info.agency_code:
            raise NotAuthenticated("CERTIFICATE_WITHOUT_AGENCY_CODE")
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        display = str(names[0].value) if names else ""
        scopes, provinces = self._permissions.lookup(info.agency_code, display)
        caller = Caller(
            display_name=display,
            agency_code=info.agency_code,
            province_code=info.province_code or "",
            scopes=scopes,
            provinces=provinces,
            method=AuthMethod.MUTUAL_TLS,
            certificate_subject=leaf.subject.rfc4514_string(),
            certificate_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
            certificate_not_after=leaf.not_valid_after_utc,
        )
        return VerifiedCertificate(leaf, caller)


def describe_certificate(leaf: x509.Certificate | None) -> dict[str, str]:
    """Identifiers of a presented certificate for the audit log (never key material)."""
    if leaf is None:
        return {}
    return {
        "certificate_subject": leaf.subject.rfc4514_string()[:200],
        "certificate_issuer": leaf.issuer.rfc4514_string()[:200],
        "certificate_serial": format(leaf.serial_number, "x"),
        "certificate_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
    }
