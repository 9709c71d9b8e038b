"""Key generation, the key policy (what a subscriber may use), and encrypted PKCS#8 storage.

Keys kept in files are always PKCS#8 encrypted with a passphrase (PBES2, AES-256-CBC, as OpenSSL
writes it); the embedded development deployment uses them. Production CA keys live in a PKCS#11 token
and are reached through an object implementing cryptography's private-key interface, so everything
here that signs takes ``CertificateIssuerPrivateKeyTypes`` and never needs the key bytes.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)

from signing.errors import InvalidInput

__all__ = [
    "ALLOWED_CURVES",
    "KeyAlgorithm",
    "MIN_RSA_BITS",
    "WeakKey",
    "check_public_key",
    "dump_encrypted_private_key",
    "generate_private_key",
    "load_private_key",
    "signature_hash",
]

MIN_RSA_BITS = 2048
ALLOWED_CURVES: frozenset[str] = frozenset({"secp256r1", "secp384r1", "secp521r1"})


class WeakKey(InvalidInput):
    """The public key is too weak or of an unsupported type."""

    reason = "WEAK_OR_UNSUPPORTED_KEY"


class KeyAlgorithm(StrEnum):
    """The key algorithms the CA generates and certifies."""
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"


_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1(),
    KeyAlgorithm.EC_P384: ec.SECP384R1(),
}


def generate_private_key(algorithm: KeyAlgorithm) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A new private key of ``algorithm`` (in memory; keys in a token come from :mod:`signing.pkcs11`)."""
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm])
    bits = int(algorithm.value.split("-")[1])
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def check_public_key(key: CertificatePublicKeyTypes) -> CertificatePublicKeyTypes:
    """Return ``key`` if the policy accepts it for a certificate; raise :class:`WeakKey` otherwise.

    Accepted: RSA of at least 2048 bits with exponent 65537 or larger odd exponents, ECDSA on P-256,
    P-384 or P-521, and Ed25519.
    """
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise WeakKey(
                f"RSA keys must have at least {MIN_RSA_BITS} bits (got {key.key_size})",
                metadata={"key_type": "RSA", "key_size": str(key.key_size)},
            )
        e = key.public_numbers().e
        if e < 65537 or e % 2 == 0:
            raise WeakKey("RSA public exponent must be odd and at least 65537")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise WeakKey(
                f"elliptic curve {key.curve.name} is not supported (use P-256, P-384 or P-521)",
                metadata={"key_type": "EC", "curve": key.curve.name},
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise WeakKey(f"unsupported public key type {type(key).__name__}")


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    """The hash an issuer signs with: SHA-384 for P-384/P-521 keys, none for EdDSA, else SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def dump_encrypted_private_key(key: PrivateKeyTypes, passphrase: bytes) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` (PKCS#8) protected by ``passphrase``."""
    if len(passphrase) < 12:
        raise InvalidInput("key passphrase must have at least 12 bytes", reason="WEAK_PASSPHRASE")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def load_private_key(data: bytes, passphrase: bytes | None) -> PrivateKeyTypes:
    """Load a PEM or DER private key; a wrong passphrase or damaged file raises ``InvalidInput``."""
    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_private_key(data, passphrase)
        return serialization.load_der_private_key(data, passphrase)
    except (ValueError, TypeError) as exc:
        # The underlying message can say whether the passphrase or the encoding was wrong; neither
        # helps an attacker much, but the message is kept generic like every verification failure.
        raise InvalidInput(
            "private key could not be loaded (wrong passphrase or damaged file)",
            reason="KEY_LOAD_FAILED",
        ) from exc
