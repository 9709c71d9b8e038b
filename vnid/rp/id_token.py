"""ID token validation for relying parties (OpenID Connect Core §3.1.3.7), on pyjwt.

Checks, in order: the algorithm is one the relying party accepts (never ``none``, never HMAC — so a
token "signed" with HS256 using the provider's public key as secret is refused before any key is
used); the signature, with the provider's key named by ``kid``; ``iss``; ``aud`` contains the client
and ``azp`` (required with several audiences, checked whenever present) is the client; ``exp``,
``iat`` (and ``nbf``) against ``now`` with a small leeway; ``nonce`` equals the one sent; ``acr`` is
at least the level the relying party requires (the scale is ordered: ``LoA2`` satisfies ``LoA1``);
``auth_time`` is present and recent enough for ``max_age``. Every failure raises the same
:class:`TokenInvalid`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError

from vnid.assurance import AcrNames, AssuranceLevel
from vnid.rp.errors import TokenInvalid
from vnid.rp.jwks import JwksCache

__all__ = ["ALLOWED_ALGS", "IdTokenValidator", "ValidatedIdToken", "unverified_header"]

ALLOWED_ALGS = ("ES256", "PS256", "EdDSA")
_REQUIRED = ("iss", "aud", "exp", "iat", "sub")


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, to choose the algorithm and key; nothing in it is trusted. (pyjwt's own
    helper decodes and checks the whole token, which ``jwt.decode`` does again right after.)"""
    head = token.split(".", 1)[0]
    if not head or len(head) > 2048 or token.count(".") != 2:
        raise TokenInvalid("malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error):
        raise TokenInvalid("malformed") from None
    if not isinstance(header, dict):
        raise TokenInvalid("malformed")
    return header


@dataclass(frozen=True, slots=True)
class ValidatedIdToken:
    """An ID token that passed validation: its claims and assurance level."""
    claims: Mapping[str, Any]
    level: AssuranceLevel

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def sid(self) -> str:
        return str(self.claims.get("sid", ""))


class IdTokenValidator:
    """Validates ID tokens: signature by the provider's keys, issuer, audience, times, nonce and the assurance
    level."""
    def __init__(self, *, issuer: str, client_id: str, jwks: JwksCache,
                 algorithms: Sequence[str] = ALLOWED_ALGS,
                 leeway: dt.timedelta = dt.timedelta(seconds=30),
                 acr: AcrNames | None = None) -> None:
        bad = [a for a in algorithms if a not in ALLOWED_ALGS]
        if bad:
            raise ValueError(f"refusing to accept {bad}: only {ALLOWED_ALGS}")
        self.issuer = issuer
        self.client_id = client_id
        self.jwks = jwks
        self.algorithms = list(algorithms)
        self.leeway = leeway.total_seconds()
        self.acr = acr or AcrNames()

    def validate(self, token: str, *, now: dt.datetime, nonce: str | None,
                 min_level: AssuranceLevel = AssuranceLevel.LOA1,
                 max_age: int | None = None) -> ValidatedIdToken:
        header = unverified_header(token)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenInvalid("algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenInvalid("no kid")
        key = self.jwks.key(kid, now)
        try:
            # pyjwt checks the algorithm against the key and the signature; the claims are
            # checked below, against ``now`` (pyjwt would read the clock itself).
            signed = jwt.api_jws.decode_complete(token, key, algorithms=[alg])
            claims = json.loads(signed["payload"])
        except (InvalidTokenError, ValueError) as exc:
            raise TokenInvalid(type(exc).__name__) from None
        if not isinstance(claims, dict) or any(c not in claims for c in _REQUIRED):
            raise TokenInvalid("required claims missing")
        if claims["iss"] != self.issuer:
            raise TokenInvalid("iss")
        aud = claims["aud"]
        if not (aud == self.client_id or (isinstance(aud, list) and self.client_id in aud)):
            raise TokenInvalid("aud")
        return ValidatedIdToken(claims, self._claims(claims, now, nonce, min_level, max_age))

    def _claims(self, claims: Mapping[str, Any], now: dt.datetime, nonce: str | None,
                min_level: AssuranceLevel, max_age: int | None) -> AssuranceLevel:
        ts = now.timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise TokenInvalid("exp/iat not numbers")
        if exp <= ts - self.leeway:
            raise TokenInvalid("expired")
        if iat > ts + self.leeway:
            raise TokenInvalid("issued in the future")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > ts + self.leeway:
            raise TokenInvalid("not yet valid")
        aud = claims["aud"]
        several = isinstance(aud, list) and len(aud) > 1
        if (several or "azp" in claims) and claims.get("azp") != self.client_id:
            raise TokenInvalid("azp")
        if nonce is not None:
            got = claims.get("nonce")
            if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
                raise TokenInvalid("nonce")
        level = self.acr.parse(str(claims.get("acr", "")))
        if level is None or level < min_level:
            raise TokenInvalid("acr below the required level")
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float):
            raise TokenInvalid("auth_time missing")
        if max_age is not None and ts - auth_time > max_age + self.leeway:
            raise TokenInvalid("authentication too old for max_age")
        return level
