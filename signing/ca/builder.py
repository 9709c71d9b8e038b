"""Build and sign X.509 certificates (RFC 5280) from a public key or a PKCS#10 request.

A :class:`CertificateSpec` says what goes into a certificate; :func:`issue_certificate` signs it with
an issuer key (a key object from a file or a PKCS#11 token: anything with cryptography's private-key
interface). Policy — which fields a profile allows, validity limits, renewal rules — belongs to the
profiles built on top of this module; this module enforces only what makes a certificate well formed.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID

from signing.ca.extensions import SubjectInfo
from signing.ca.keys import check_public_key, signature_hash
from signing.errors import InvalidInput

__all__ = [
    "ROOT_MAX_YEARS",
    "CertificateSpec",
    "InvalidCsr",
    "KeyUsages",
    "issue_certificate",
    "load_csr",
    "new_serial_number",
]


class InvalidCsr(InvalidInput):
    """The certificate signing request is malformed or its signature does not verify."""

    reason = "INVALID_CSR"


@dataclass(frozen=True, slots=True)
class KeyUsages:
    """The key usage bits of a certificate."""
    digital_signature: bool = False
    content_commitment: bool = False
    key_encipherment: bool = False
    data_encipherment: bool = False
    key_agreement: bool = False
    key_cert_sign: bool = False
    crl_sign: bool = False

    def to_extension(self) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=self.digital_signature,
            content_commitment=self.content_commitment,
            key_encipherment=self.key_encipherment,
            data_encipherment=self.data_encipherment,
            key_agreement=self.key_agreement,
            key_cert_sign=self.key_cert_sign,
            crl_sign=self.crl_sign,
            encipher_only=False,
            decipher_only=False,
        )


CA_KEY_USAGES = KeyUsages(digital_signature=True, key_cert_sign=True, crl_sign=True)


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    """Everything that goes into one certificate except the keys and the serial number."""

    subject: x509.Name
    not_before: dt.datetime
    not_after: dt.datetime
    key_usages: KeyUsages
    is_ca: bool = False
    path_length: int | None = None
    extended_key_usages: Sequence[x509.ObjectIdentifier] = ()
    eku_critical: bool = False
    subject_alt_names: Sequence[x509.GeneralName] = ()
    subject_info: SubjectInfo | None = None
    crl_urls: Sequence[str] = ()
    # Where delta CRLs are published (freshestCRL, RFC 5280 4.2.1.15). Relying parties such as
    # pyhanko-certvalidator fetch deltas only from the certificate's extension, so a CA that
    # points its full CRLs at deltas must name them in its certificates too.
    delta_crl_urls: Sequence[str] = ()
    ocsp_urls: Sequence[str] = ()
    ca_issuers_urls: Sequence[str] = ()
    policy_oids: Sequence[x509.ObjectIdentifier] = ()
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = field(default=())

    def __post_init__(self) -> None:
        if self.not_before.tzinfo is None or self.not_after.tzinfo is None:
            raise InvalidInput("validity instants must be timezone-aware", reason="NAIVE_DATETIME")
        if self.not_after <= self.not_before:
            raise InvalidInput("notAfter must be later than notBefore", reason="INVALID_VALIDITY")
        if not self.subject.rdns:
            raise InvalidInput("subject must not be empty", reason="EMPTY_SUBJECT")


# Extensions that are the same for every certificate of an issuer are built once (a CA writes
# thousands of certificates a minute; the objects are immutable).
@functools.lru_cache(maxsize=64)
def _distribution_points(urls: tuple[str, ...]) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in urls],
        relative_name=None, reasons=None, crl_issuer=None)])


@functools.lru_cache(maxsize=64)
def _freshest_crl(urls: tuple[str, ...]) -> x509.FreshestCRL:
    return x509.FreshestCRL([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in urls],
        relative_name=None, reasons=None, crl_issuer=None)])


@functools.lru_cache(maxsize=64)
def _authority_information_access(ocsp: tuple[str, ...], ca_issuers: tuple[str, ...]
                                   ) -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                x509.UniformResourceIdentifier(u)) for u in ocsp]
        + [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                  x509.UniformResourceIdentifier(u)) for u in ca_issuers])


@functools.lru_cache(maxsize=64)
def _policies(oids: tuple[x509.ObjectIdentifier, ...]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(o, None) for o in oids])


@functools.lru_cache(maxsize=16)
def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(
        issuer.public_key())  # type: ignore[arg-type]


def new_serial_number() -> int:
    """A positive 159-bit random serial number (RFC 5280 allows 20 octets; CA/B asks >= 64 bits)."""
    return x509.random_serial_number()


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER PKCS#10 request and verify its self-signature (proof of possession)."""
    try:
        if data.lstrip().startswith(b"-----"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise InvalidCsr("certificate signing request could not be parsed") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:  # unsupported algorithm
        raise InvalidCsr("certificate signing request uses an unsupported signature") from exc
    if not valid:
        raise InvalidCsr("certificate signing request signature does not verify (no proof of "
                         "possession of the private key)")
    return csr


ROOT_MAX_YEARS = 20


def _years_later(at: dt.datetime, years: int) -> dt.datetime:
    try:
        return at.replace(year=at.year + years)
    except ValueError:  # 29 February
        return at.replace(year=at.year + years, day=28)


def issue_certificate(
    spec: CertificateSpec,
    subject_public_key: CertificatePublicKeyTypes,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    issuer_certificate: x509.Certificate | None = None,
    *,
    serial_number: int | None = None,
) -> x509.Certificate:
    """Sign a certificate for ``subject_public_key`` as described by ``spec``.

    With ``issuer_certificate`` omitted the certificate is self-issued and self-signed (a root), and
    ``issuer_key`` must be the private half of ``subject_public_key``.
    """
    check_public_key(subject_public_key)
    if issuer_certificate is None:
        issuer_name = spec.subject
        issuer_public = subject_public_key
        if spec.is_ca and spec.not_after > _years_later(spec.not_before, ROOT_MAX_YEARS):
            raise InvalidInput(f"a root CA certificate is valid for at most {ROOT_MAX_YEARS} "
                               "years", reason="VALIDITY_TOO_LONG")
    else:
        issuer_name = issuer_certificate.subject
        issuer_public = issuer_certificate.public_key()
        # X.509 times have whole seconds; compare as they will be encoded.
        if spec.not_after.replace(microsecond=0) > issuer_certificate.not_valid_after_utc:
            raise InvalidInput("certificate would outlive its issuer", reason="OUTLIVES_ISSUER")
    if issuer_key.public_key() != issuer_public:
        raise InvalidInput("issuer key does not match the issuer certificate", reason="KEY_MISMATCH")

    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer_name)
        .public_key(subject_public_key)
        .serial_number(serial_number if serial_number is not None else new_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=spec.is_ca, path_length=spec.path_length),
                       critical=True)
        .add_extension(spec.key_usages.to_extension(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_public_key),
                       critical=False)
    )
    if issuer_certificate is not None or not spec.is_ca:
        aki = (_authority_key_identifier(issuer_certificate) if issuer_certificate is not None
               else x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_public))  # type: ignore[arg-type]
        builder = builder.add_extension(aki, critical=False)
    if spec.extended_key_usages:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(spec.extended_key_usages)), critical=spec.eku_critical
        )
    if spec.subject_alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(spec.subject_alt_names)), critical=False
        )
    if spec.crl_urls:
        builder = builder.add_extension(_distribution_points(tuple(spec.crl_urls)),
                                        critical=False)
    if spec.delta_crl_urls:
        builder = builder.add_extension(_freshest_crl(tuple(spec.delta_crl_urls)),
                                        critical=False)
    if spec.ocsp_urls or spec.ca_issuers_urls:
        builder = builder.add_extension(
            _authority_information_access(tuple(spec.ocsp_urls), tuple(spec.ca_issuers_urls)),
            critical=False)
    if spec.policy_oids:
        builder = builder.add_extension(_policies(tuple(spec.policy_oids)), critical=False)
    if spec.subject_info is not None:
        builder = builder.add_extension(spec.subject_info.to_extension(), critical=False)
    for ext, critical in spec.extra_extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, signature_hash(issuer_key))
