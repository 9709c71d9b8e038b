"""Certificate authority for public-service digital signatures (Decree 68/2024/NĐ-CP).

This module builds and signs X.509 certificates (RFC 5280); profiles, request lifecycle, CRLs (RFC
5280) and OCSP (RFC 6960) are built on it.
"""

from signing.ca.builder import (
    CA_KEY_USAGES,
    CertificateSpec,
    InvalidCsr,
    KeyUsages,
    issue_certificate,
    load_csr,
    new_serial_number,
)
from signing.ca.extensions import (
    OID_VNEGOV,
    OID_VNEGOV_SUBJECT_INFO,
    SubjectInfo,
    read_subject_info,
)
from signing.ca.keys import (
    KeyAlgorithm,
    WeakKey,
    check_public_key,
    dump_encrypted_private_key,
    generate_private_key,
    load_private_key,
)

__all__ = [
    "CA_KEY_USAGES",
    "CertificateSpec",
    "InvalidCsr",
    "KeyAlgorithm",
    "KeyUsages",
    "OID_VNEGOV",
    "OID_VNEGOV_SUBJECT_INFO",
    "SubjectInfo",
    "WeakKey",
    "check_public_key",
    "dump_encrypted_private_key",
    "generate_private_key",
    "issue_certificate",
    "load_csr",
    "load_private_key",
    "new_serial_number",
    "read_subject_info",
]
