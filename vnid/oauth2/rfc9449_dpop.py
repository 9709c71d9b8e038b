"""RFC 9449 OAuth 2.0 Demonstrating Proof of Possession (DPoP).

A DPoP proof is a JWT with ``typ: dpop+jwt``, signed by the private key whose public half is in its
``jwk`` header, naming the HTTP method (``htm``) and URL (``htu``) of the request it travels with,
when it was made (``iat``), a unique ``jti``, the server's ``nonce`` when the server asks for one
(§8), and, at a resource server, the hash of the access token (``ath``, §4.3). The provider
remembers every accepted ``jti`` until the proof can no longer be accepted (§11.1), so a proof is
used once.

Nonces are stateless: ``base64url(window ‖ HMAC-SHA256(secret, window))`` for the current time
window; the current and the previous window are accepted, so a nonce lives between one and two
windows.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vnid.jose.verify import (
    BadJws,
    public_key_and_thumbprint,
    unverified_parts,
    verify_compact_jws,
)
from vnid.oauth2.errors import InvalidDpopProof, UseDpopNonce

__all__ = [
    "DPOP_ALGS",
    "DpopNonces",
    "DpopProof",
    "access_token_hash",
    "normalize_htu",
    "verify_dpop_proof",
]

DPOP_ALGS = ("ES256", "PS256", "EdDSA")
MAX_PROOF_AGE = dt.timedelta(seconds=60)
_SKEW = dt.timedelta(seconds=5)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII bytes (§4.2)."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def normalize_htu(url: str) -> str:
    """The URL without query and fragment, scheme and host in lower case (§4.3)."""
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    if parts.scheme.lower() == "https" and netloc.endswith(":443"):
        netloc = netloc[:-4]
    if parts.scheme.lower() == "http" and netloc.endswith(":80"):
        netloc = netloc[:-3]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


@dataclass(frozen=True, slots=True)
class DpopProof:
    jkt: str  # RFC 7638 thumbprint of the proof's public key
    jti: str
    issued_at: dt.datetime
    public_jwk: dict[str, Any]


class DpopNonces:
    """Stateless, time-windowed nonces (every replica with the same secret accepts them)."""

    def __init__(self, secret: bytes, window: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        if len(secret) < 32:
            raise ValueError("the DPoP nonce secret needs at least 32 bytes")
        self._secret = secret
        self._window = int(window.total_seconds())
        self._made: dict[int, str] = {}  # the nonces of the latest windows

    def _for(self, index: int) -> str:
        nonce = self._made.get(index)
        if nonce is None:
            packed = struct.pack(">Q", index)
            mac = hmac.new(self._secret, b"dpop-nonce" + packed, hashlib.sha256).digest()[:16]
            nonce = _b64(packed + mac)
            if len(self._made) >= 4:
                self._made = {}
            self._made[index] = nonce
        return nonce

    def current(self, now: dt.datetime) -> str:
        return self._for(int(now.timestamp()) // self._window)

    def valid(self, nonce: str, now: dt.datetime) -> bool:
        index = int(now.timestamp()) // self._window
        return any(hmac.compare_digest(nonce, self._for(i)) for i in (index, index - 1))


def verify_dpop_proof(proof: str | None, *, method: str, url: str, now: dt.datetime,
                      nonces: DpopNonces | None, access_token: str | None = None,
                      algorithms: Collection[str] = DPOP_ALGS) -> DpopProof:
    """Check one DPoP proof (§4.3 steps 1-11, except replay which the caller records).

    Raises :class:`UseDpopNonce` (with the fresh nonce in its ``DPoP-Nonce`` header) when
    ``nonces`` is given and the proof has no valid nonce; :class:`InvalidDpopProof` for anything
    else.
    """
    if not proof or proof.count(".") != 2 or len(proof) > 8192:
        raise InvalidDpopProof("a single well-formed DPoP proof is required")
    try:
        header, _ = unverified_parts(proof)
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise BadJws("no jwk")
        key, jkt = public_key_and_thumbprint(jwk)
        _, claims = verify_compact_jws(proof, [key], algorithms, typ="dpop+jwt", header=header)
    except BadJws:
        raise InvalidDpopProof("the DPoP proof does not verify") from None
    if claims.get("htm") != method.upper():
        raise InvalidDpopProof("htm does not match the request")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):
        raise InvalidDpopProof("htu does not match the request")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise InvalidDpopProof("jti is missing")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise InvalidDpopProof("iat is missing")
    issued = dt.datetime.fromtimestamp(iat, dt.UTC)
    if issued > now + _SKEW or now - issued > MAX_PROOF_AGE:
        raise InvalidDpopProof("the DPoP proof is too old or from the future")
    if access_token is not None:
        if claims.get("ath") != access_token_hash(access_token):
            raise InvalidDpopProof("ath does not match the access token")
    if nonces is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonces.valid(nonce, now):
            raise UseDpopNonce("a fresh DPoP nonce is required",
                               headers=[("dpop-nonce", nonces.current(now))])
    return DpopProof(jkt=jkt, jti=jti, issued_at=issued, public_jwk=dict(jwk))
