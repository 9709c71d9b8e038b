"""DPoP proofs made by the relying party (RFC 9449 §4), with pyjwt.

The relying party keeps one key pair per login (or per session) and proves possession of it on
every token and resource request; the provider's ``DPoP-Nonce`` is remembered per origin and the
request retried once when the provider asks for a fresh one (§8, §9).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

__all__ = ["DpopKey", "jwk_thumbprint"]


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256) of an EC public JWK."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"),
                           sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class DpopKey:
    """An ES256 key pair used for DPoP proofs."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        self.public_jwk = {k: public[k] for k in ("kty", "crv", "x", "y")}
        self.jkt = jwk_thumbprint(self.public_jwk)
        self.nonces: dict[str, str] = {}

    def proof(self, method: str, url: str, *, now: dt.datetime, access_token: str | None = None,
              nonce: str | None = None) -> str:
        claims: dict[str, Any] = {"htm": method, "htu": url, "iat": int(now.timestamp()),
                                  "jti": secrets.token_urlsafe(16)}
        if nonce:
            claims["nonce"] = nonce
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return jwt.encode(claims, self.private_key, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": self.public_jwk})
