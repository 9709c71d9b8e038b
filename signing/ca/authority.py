"""An issuing certificate authority: its certificate, its signing key, the URLs it publishes, and
how it turns a profile plus subscriber data into a signed certificate.

The key is anything with cryptography's private-key interface: an encrypted file key loaded by the
embedded deployment, or a key that stays in a PKCS#11 token (:mod:`signing.pkcs11`). A
:class:`KeySource` gives out keys by label, so the same configuration can name either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from signing.ca.builder import CertificateSpec, issue_certificate
from signing.ca.profiles import CertificateProfile
from signing.ca.subject import SubjectData, SubjectLayout, build_subject
from signing.ca.validity import Validity
from signing.errors import InvalidInput

__all__ = ["AuthorityUrls", "IssuingAuthority", "KeySource", "key_identifier"]


class KeySource(Protocol):
    """Where signing keys come from: encrypted files (embedded demo) or a PKCS#11 token."""

    def signing_key(self, label: str) -> CertificateIssuerPrivateKeyTypes:
        """The private key named ``label``; raises :class:`signing.errors.NotFound` if absent."""
        ...


def key_identifier(public_key: CertificatePublicKeyTypes) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING (RFC 5280 4.2.1.2 method 1; also the OCSP key
    hash)."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest


@dataclass(frozen=True, slots=True)
class AuthorityUrls:
    """Where relying parties find this CA's revocation data and certificate."""

    crl: str
    delta_crl: str
    ocsp: str
    ca_issuers: str


@dataclass(frozen=True)
class IssuingAuthority:
    """An issuing CA: its certificate and key, and the URLs (CRL, OCSP, CA issuers) it writes into what it
    issues."""
    name: str  # short, URL-safe: "issuing-ca"
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    urls: AuthorityUrls
    chain: Sequence[x509.Certificate] = ()  # up to, not including, the trust anchor
    key_id: bytes = field(init=False)
    name_der: bytes = field(init=False)

    def __post_init__(self) -> None:
        if self.key.public_key() != self.certificate.public_key():
            raise InvalidInput(f"the key of CA {self.name} does not match its certificate",
                               reason="KEY_MISMATCH")
        object.__setattr__(self, "key_id", key_identifier(self.certificate.public_key()))
        object.__setattr__(self, "name_der", self.certificate.subject.public_bytes())

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def name_hash(self, algorithm: str) -> bytes:
        return hashlib.new(algorithm, self.name_der).digest()

    def spec(self, profile: CertificateProfile, subject: SubjectData, validity: Validity, *,
             layout: SubjectLayout | None = None) -> CertificateSpec:
        """The certificate ``profile`` makes for ``subject``; ``layout`` is the result of
        :func:`signing.ca.build_subject` for them when the caller has it already."""
        name, info, sans = layout or build_subject(profile, subject)
        extra: list[tuple[x509.ExtensionType, bool]] = []
        if profile.ocsp_nocheck:
            extra.append((x509.OCSPNoCheck(), False))
        return CertificateSpec(
            subject=name, not_before=validity.not_before, not_after=validity.not_after,
            key_usages=profile.key_usages, extended_key_usages=profile.extended_key_usages,
            eku_critical=profile.extended_key_usage_critical, subject_alt_names=sans,
            subject_info=info, crl_urls=(self.urls.crl,),
            delta_crl_urls=(self.urls.delta_crl,) if self.urls.delta_crl else (),
            ocsp_urls=(self.urls.ocsp,),
            ca_issuers_urls=(self.urls.ca_issuers,), policy_oids=(profile.policy_oid,),
            extra_extensions=extra,
        )

    def issue(self, profile: CertificateProfile, subject: SubjectData,
              public_key: CertificatePublicKeyTypes, validity: Validity, *,
              serial_number: int | None = None,
              layout: SubjectLayout | None = None) -> x509.Certificate:
        """Check the key against the profile, lay out the subject, and sign."""
        profile.check_public_key(public_key)
        return issue_certificate(self.spec(profile, subject, validity, layout=layout),
                                 public_key, self.key, self.certificate,
                                 serial_number=serial_number)
