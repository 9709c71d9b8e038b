"""Verifying compact JWS with an explicit algorithm allow-list (RFC 7515, RFC 8725).

RFC 8725 §3.1: "Libraries MUST enable the caller to specify a supported set of algorithms and MUST
NOT use any other algorithms when performing cryptographic operations." Here the allow-list is always
explicit and never contains ``none`` or an HMAC algorithm, and the key is chosen by the verifier —
never taken from the token — so an ``alg: HS256`` token "signed" with a public key is refused before
any key is touched.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Collection, Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from vnid.jose.registry import jws_registry

__all__ = [
    "ASYMMETRIC_ALGS",
    "BadJws",
    "key_fits",
    "public_key_and_thumbprint",
    "public_key_from_jwk",
    "unverified_parts",
    "verify_compact_jws",
]

ASYMMETRIC_ALGS = frozenset({"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256",
                             "EdDSA", "Ed25519"})
_KTY = {"ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
        "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
        "RS256": ("RSA", None), "EdDSA": ("OKP", "Ed25519"), "Ed25519": ("OKP", "Ed25519")}


class BadJws(Exception):
    """The JWS is malformed, uses a refused algorithm, or does not verify (deliberately vague)."""


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, NOT verified: only to find the issuer and key."""
    try:
        head, body, _sig = token.split(".")
        header = json.loads(_b64(head))
        claims = json.loads(_b64(body))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadJws("malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise BadJws("malformed")
    return header, claims


def key_fits(key: Key, alg: str) -> bool:
    kty, crv = _KTY.get(alg, ("", None))
    if key.key_type != kty:
        return False
    if crv is not None and getattr(key, "curve_name", None) != crv:
        return False
    use = key.get("use") if hasattr(key, "get") else None
    return use in (None, "sig")


def verify_compact_jws(token: str, keys: Iterable[Key], algorithms: Collection[str], *,
                       typ: str | None = None, header: dict[str, Any] | None = None
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``token`` with one of ``keys`` (by ``kid`` when the header names one) using only
    ``algorithms``; return its header and claims, or raise :class:`BadJws`. ``header`` is the
    token's header when the caller has already decoded it."""
    allowed = [a for a in algorithms if a in ASYMMETRIC_ALGS]
    if header is None:
        header, _ = unverified_parts(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise BadJws("algorithm not allowed")
    if typ is not None and str(header.get("typ", "")).lower() != typ.lower():
        raise BadJws("wrong type")
    if header.get("crit"):
        raise BadJws("critical header parameters are not understood")
    kid = header.get("kid")
    candidates = [k for k in keys if key_fits(k, alg)]
    if isinstance(kid, str):
        candidates = [k for k in candidates if k.kid == kid]
    signing_input, _, signature_part = token.rpartition(".")
    try:
        signature = _b64(signature_part)
    except (ValueError, binascii.Error):
        raise BadJws("malformed") from None
    for key in candidates:
        if alg in _DIRECT:
            if not _DIRECT[alg](key.public_key, signing_input.encode(), signature):
                continue
            try:
                claims = json.loads(_b64(signing_input.partition(".")[2]))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise BadJws("malformed") from None
            if not isinstance(claims, dict):
                raise BadJws("malformed")
            return header, claims
        try:
            obj = jws.deserialize_compact(token, key, registry=jws_registry([alg]))
        except (JoseError, ValueError, TypeError):
            continue
        try:
            claims = json.loads(obj.payload or b"")
        except ValueError:
            raise BadJws("malformed") from None
        if not isinstance(claims, dict):
            raise BadJws("malformed")
        return dict(obj.headers()), claims
    raise BadJws("signature")


# The algorithms of the hot paths (client assertions, DPoP proofs, device statements), verified
# with cryptography directly — the same checks joserfc makes, without building its objects.
def _es256(public: Any, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64 or not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _ps256(public: Any, message: bytes, signature: bytes) -> bool:
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    try:
        public.verify(signature, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                      salt_length=32), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _ed25519(public: Any, message: bytes, signature: bytes) -> bool:
    if not isinstance(public, ed25519.Ed25519PublicKey):
        return False
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


_DIRECT = {"ES256": _es256, "PS256": _ps256, "EdDSA": _ed25519, "Ed25519": _ed25519}


_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e")


def public_key_from_jwk(jwk: dict[str, Any]) -> Key:
    """Import a public JWK (refusing private and symmetric keys)."""
    return public_key_and_thumbprint(jwk)[0]


def public_key_and_thumbprint(jwk: dict[str, Any]) -> tuple[Key, str]:
    """The imported public key and its RFC 7638 thumbprint. DPoP proofs carry the same key on
    every request, so imports are remembered (by the key's public members only)."""
    if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") not in {"EC", "RSA", "OKP"}:
        raise BadJws("not a public asymmetric key")
    members = tuple(str(jwk.get(m, "")) for m in _PUBLIC_MEMBERS)
    if any(len(m) > 2048 for m in members):
        raise BadJws("invalid key")
    return _import_public(members)


@functools.lru_cache(maxsize=4096)
def _import_public(members: tuple[str, ...]) -> tuple[Key, str]:
    jwk = {name: value for name, value in zip(_PUBLIC_MEMBERS, members, strict=True) if value}
    cls = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[jwk["kty"]]
    try:
        key = cls.import_key(jwk)  # type: ignore[attr-defined]
    except (JoseError, ValueError, TypeError, KeyError):
        raise BadJws("invalid key") from None
    return key, key.thumbprint()
