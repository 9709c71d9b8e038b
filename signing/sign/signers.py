"""The :class:`Signer` port: who signs, and where the private-key operation happens.

Three implementations:

* :class:`KeySigner`: a key held in memory as a parsed cryptography key object. pyHanko's stock
  ``SimpleSigner`` keeps the key as PKCS#8 bytes and parses it again for every signature; for an
  RSA-3072 key that parse (with OpenSSL's consistency checks) is most of the cost of a signature.
  Here the key is parsed once, when the signer is built, and reused.
* :class:`TokenSigner`: a key inside a PKCS#11 token (:mod:`signing.pkcs11`). The token's
  mechanisms are discovered when it is opened; hash-and-sign mechanisms are used when the token
  offers them, raw mechanisms (``CKM_ECDSA``, ``CKM_RSA_PKCS`` over a DigestInfo) otherwise.
* :class:`signing.sign.remote.RemoteSigner`: a key held by a remote signing service, reached
  with Cloud Signature Consortium API semantics.

A signer signs *data* (for CMS, the DER of the signed attributes: a few hundred bytes) with the
hash algorithm named, and returns the raw signature value (PKCS#1 v1.5 for RSA, DER
``Ecdsa-Sig-Value`` for ECDSA), which is what CMS carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from signing.errors import InvalidInput
from signing.pkcs11 import Token, TokenEcKey, TokenError, TokenRsaKey
from signing.sign.errors import SignerMismatch, SigningRefused

__all__ = [
    "HASHES",
    "KeySigner",
    "Signer",
    "TokenSigner",
    "hash_for",
    "signature_size",
]

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def hash_for(name: str) -> hashes.HashAlgorithm:
    try:
        return HASHES[name]()
    except KeyError:
        raise InvalidInput(f"unsupported hash algorithm {name!r} (use sha256, sha384 or sha512)",
                           reason="UNSUPPORTED_HASH") from None


@runtime_checkable
class Signer(Protocol):
    """Makes signatures for one certificate."""

    @property
    def certificate(self) -> x509.Certificate:
        """The signer's certificate."""
        ...

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        """Issuing CA certificates to embed (root optional)."""
        ...

    def sign(self, data: bytes, hash_algorithm: str) -> bytes:
        """The raw signature value over ``data`` hashed with ``hash_algorithm``."""
        ...


def signature_size(certificate: x509.Certificate) -> int:
    """Upper bound of a raw signature's size for ``certificate``'s key (for size estimates)."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return (key.key_size + 7) // 8
    if isinstance(key, ec.EllipticCurvePublicKey):
        n = (key.curve.key_size + 7) // 8
        return 2 * n + 9  # DER SEQUENCE of two INTEGERs with sign bytes
    raise InvalidInput("only RSA and ECDSA signer keys are supported", reason="UNSUPPORTED_KEY")


def _sign_with(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes,
               hash_algorithm: str, *, prehashed: bool = False) -> bytes:
    algorithm: hashes.HashAlgorithm | utils.Prehashed = hash_for(hash_algorithm)
    if prehashed:
        assert isinstance(algorithm, hashes.HashAlgorithm)
        if len(data) != algorithm.digest_size:
            raise InvalidInput("the digest does not match the hash algorithm",
                               reason="BAD_DIGEST")
        algorithm = utils.Prehashed(algorithm)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    return key.sign(data, ec.ECDSA(algorithm))


class KeySigner:
    """A signer whose key is a cryptography key object, parsed once and reused."""

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()) -> None:
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidInput("only RSA and ECDSA keys are supported", reason="UNSUPPORTED_KEY")
        if key.public_key() != certificate.public_key():
            raise SignerMismatch("the key does not belong to the signer's certificate")
        self._key = key
        self._certificate = certificate
        self._chain = tuple(chain)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        return self._chain

    @property
    def key(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        return self._key

    def sign(self, data: bytes, hash_algorithm: str) -> bytes:
        return _sign_with(self._key, data, hash_algorithm)

    def sign_digest(self, digest: bytes, hash_algorithm: str) -> bytes:
        """Sign a precomputed digest (remote signing's signHash)."""
        return _sign_with(self._key, digest, hash_algorithm, prehashed=True)


class TokenSigner:
    """A signer whose key never leaves a PKCS#11 token."""

    def __init__(self, token: Token, label: str, certificate: x509.Certificate,
                 chain: Sequence[x509.Certificate] = ()) -> None:
        key = token.key(label)
        if key.public_key() != certificate.public_key():
            raise SignerMismatch("the token key does not belong to the signer's certificate")
        self._key: TokenRsaKey | TokenEcKey = key
        self._token = token
        self._certificate = certificate
        self._chain = tuple(chain)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        return self._chain

    @property
    def key(self) -> TokenRsaKey | TokenEcKey:
        return self._key

    @property
    def mechanisms(self) -> frozenset[str]:
        """The token's mechanisms (as discovered when it was opened)."""
        return self._token.mechanisms

    def sign(self, data: bytes, hash_algorithm: str) -> bytes:
        try:
            return _sign_with(self._key, data, hash_algorithm)
        except TokenError as exc:
            raise SigningRefused("the token refused to sign") from exc

    def sign_digest(self, digest: bytes, hash_algorithm: str) -> bytes:
        """Sign a precomputed digest with the token's raw mechanism (CKM_ECDSA, or CKM_RSA_PKCS
        over the DigestInfo)."""
        try:
            return _sign_with(self._key, digest, hash_algorithm, prehashed=True)
        except TokenError as exc:
            raise SigningRefused("the token refused to sign") from exc
