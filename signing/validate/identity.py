"""Who signed: the signer's identity as read from the certificate.

Name, title (X.520 ``title``, 2.5.4.12), organisation and unit come from the subject; the agency
code from this project's subject-information extension (:mod:`signing.ca.extensions`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from signing.ca.extensions import read_subject_info
from signing.errors import InvalidInput
from signing.validate.report import SignerIdentity

__all__ = ["signer_identity"]


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


def signer_identity(cert: x509.Certificate) -> SignerIdentity:
    try:
        info = read_subject_info(cert)
    except InvalidInput:
        info = None
    subject = cert.subject
    return SignerIdentity(
        name=_first(subject, NameOID.COMMON_NAME) or subject.rfc4514_string(),
        title=_first(subject, NameOID.TITLE),
        organisation=_first(subject, NameOID.ORGANIZATION_NAME),
        organisational_unit=_first(subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        agency_code=info.agency_code if info else None,
        subject=subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial_number=f"{cert.serial_number:x}",
        certificate_sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )
