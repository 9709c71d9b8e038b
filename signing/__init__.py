"""Public-service digital signatures: the certificate authority (``signing.ca``), RFC 3161 time
stamps (``signing.tsa``), signing PDF, CMS and XML documents (``signing.sign``), Decree 30/2020
appearances (``signing.stamp``), PKCS#11 tokens (``signing.pkcs11``) and verification with
EN 319 102-1 reports (``signing.validate``).

This package exports the error hierarchy every subpackage raises: catch :class:`SigningError`
(or one of its kinds) and read its ``reason``."""

from signing.errors import (
    AuthenticationFailed,
    Conflict,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    NotPermitted,
    RateLimited,
    SigningError,
)

__all__ = [
    "AuthenticationFailed",
    "Conflict",
    "FailedPrecondition",
    "InvalidInput",
    "NotFound",
    "NotPermitted",
    "RateLimited",
    "SigningError",
]
