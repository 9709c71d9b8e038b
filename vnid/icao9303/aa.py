"""Active Authentication (ICAO 9303 part 11, 6.1): the chip proves it holds the private key whose
public key is in DG15 by signing a challenge the verifier chose, so a copy of the data groups on
another chip cannot answer.

* RSA keys sign with ISO/IEC 9796-2 digital signature scheme 1 (message recovery): the recovered
  block is ``6A || M1 || H(M1 || challenge) || trailer``, where the trailer ``BC`` means SHA-1 and
  ``xx CC`` names the hash (``34`` SHA-256, ``36`` SHA-384, ``35`` SHA-512, ``38`` SHA-224, ``33``
  SHA-1). Both the signature and its complement modulo n are accepted, as ISO 9796-2 allows.
* Elliptic-curve keys sign the challenge with ECDSA (plain ``r || s`` as BSI TR-03111 has it, or
  DER); the hash follows the curve size unless the caller names it (from DG14's
  ActiveAuthenticationInfo).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from vnid.icao9303.errors import ChipError

__all__ = ["verify_active_authentication"]

_TRAILER_HASH = {0x33: "sha1", 0x34: "sha256", 0x35: "sha512", 0x36: "sha384", 0x38: "sha224"}
_EC_HASH: dict[int, Callable[[], hashes.HashAlgorithm]] = {
    256: hashes.SHA256, 384: hashes.SHA384, 521: hashes.SHA512, 224: hashes.SHA224}


def _fail() -> ChipError:
    return ChipError("the chip's answer to the challenge does not verify (a copied chip, or an "
                     "answer to another challenge)", reason="CHIP_AA_FAILED")


def _rsa(key: rsa.RSAPublicKey, challenge: bytes, signature: bytes) -> None:
    numbers = key.public_numbers()
    n, e = numbers.n, numbers.e
    k = (key.key_size + 7) // 8
    s = int.from_bytes(signature, "big")
    if not 0 < s < n or len(signature) > k:
        raise _fail()
    m = pow(s, e, n)
    if m & 0xF != 0xC:
        m = n - m
    block = m.to_bytes(k, "big")
    if block[0] != 0x6A:
        raise _fail()
    if block[-1] == 0xBC:
        name, trailer = "sha1", 1
    elif block[-1] == 0xCC and block[-2] in _TRAILER_HASH:
        name, trailer = _TRAILER_HASH[block[-2]], 2
    else:
        raise _fail()
    size = hashlib.new(name).digest_size
    m1 = block[1:k - trailer - size]
    digest = block[k - trailer - size:k - trailer]
    if not hmac.compare_digest(hashlib.new(name, m1 + challenge).digest(), digest):
        raise _fail()


def _ecdsa(key: ec.EllipticCurvePublicKey, challenge: bytes, signature: bytes,
           hash_name: str | None) -> None:
    make: Callable[[], hashes.HashAlgorithm] = (
        getattr(hashes, hash_name.upper()) if hash_name
        else _EC_HASH.get(key.curve.key_size, hashes.SHA256))
    algorithm = make()
    size = (key.curve.key_size + 7) // 8
    candidates = []
    if len(signature) == 2 * size:
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        candidates.append(encode_dss_signature(r, s))
    candidates.append(signature)
    for candidate in candidates:
        try:
            key.verify(candidate, challenge, ec.ECDSA(algorithm))
            return
        except (InvalidSignature, ValueError):
            continue
    raise _fail()


def verify_active_authentication(public_key_der: bytes, challenge: bytes, signature: bytes,
                                 *, hash_name: str | None = None) -> None:
    """Check the chip's answer ``signature`` to ``challenge`` with the DG15 key (DER
    SubjectPublicKeyInfo). Raises :class:`ChipError` (``CHIP_AA_FAILED``) when it does not
    verify."""
    if not 8 <= len(challenge) <= 64 or not signature or len(signature) > 1024:
        raise _fail()
    try:
        key = load_der_public_key(public_key_der)
    except (ValueError, TypeError):
        raise ChipError("DG15 does not hold a usable public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        _rsa(key, challenge, signature)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        _ecdsa(key, challenge, signature, hash_name)
    else:
        raise ChipError("DG15's key type is not supported for active authentication")
