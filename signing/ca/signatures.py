"""Signing raw bytes with a CA key and naming the algorithm (for the structures this package
encodes itself: OCSP responses and time-stamp tokens).

The rules match :func:`signing.ca.keys.signature_hash`: ECDSA with SHA-256 (P-256) or SHA-384
(P-384, P-521), RSA PKCS#1 v1.5 with SHA-256, Ed25519 as is.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from signing.ca import der
from signing.ca.keys import signature_hash
from signing.errors import InvalidInput

__all__ = ["signature_algorithm", "signature_algorithm_der", "sign_bytes"]

_ECDSA = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3"}
_RSA = {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12"}
_ED25519 = "1.3.101.112"


def signature_algorithm(key: CertificateIssuerPrivateKeyTypes) -> tuple[str, str | None]:
    """(signature algorithm OID, digest name or None) for ``key``."""
    h = signature_hash(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert h is not None
        return _ECDSA[h.name], h.name
    if isinstance(key, rsa.RSAPrivateKey):
        assert h is not None
        return _RSA[h.name], h.name
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _ED25519, None
    raise InvalidInput(f"unsupported signing key {type(key).__name__}", reason="UNSUPPORTED_KEY")


def signature_algorithm_der(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """The AlgorithmIdentifier DER (RSA with NULL parameters, ECDSA and EdDSA without)."""
    oid, _ = signature_algorithm(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return der.sequence(der.oid(oid), der.null())
    return der.sequence(der.oid(oid))


def sign_bytes(key: CertificateIssuerPrivateKeyTypes, data: bytes) -> bytes:
    h = signature_hash(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert h is not None
        return key.sign(data, ec.ECDSA(h))
    if isinstance(key, rsa.RSAPrivateKey):
        assert h is not None
        return key.sign(data, padding.PKCS1v15(), h)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    raise InvalidInput(f"unsupported signing key {type(key).__name__}", reason="UNSUPPORTED_KEY")
