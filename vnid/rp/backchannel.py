"""Receiving back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.6).

The provider POSTs ``logout_token=<JWT>``; the relying party validates it — signature by the
provider's key (same algorithms as ID tokens), ``typ: logout+jwt``, ``iss``, ``aud``, ``iat`` recent,
``exp`` in the future, a ``jti`` not seen before, the back-channel logout event, ``sub`` or ``sid``,
and no ``nonce`` (so an ID token can never pass as a logout token) — and ends its own sessions for
that ``sid`` (or ``sub``). Answer 200 when done, 400 when the token is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from jwt.exceptions import InvalidTokenError

from vnid.rp.errors import TokenInvalid
from vnid.rp.id_token import ALLOWED_ALGS, unverified_header
from vnid.rp.jwks import JwksCache

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "BackchannelLogoutReceiver", "LogoutRequest"]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_MAX_AGE = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """A validated back-channel logout: the subject and session to end."""
    sub: str
    sid: str
    jti: str


class BackchannelLogoutReceiver:
    """Receives the provider's back-channel logout tokens: checks their signature, issuer, audience and
    freshness, and refuses a replay."""
    def __init__(self, *, issuer: str, client_id: str, jwks: JwksCache,
                 seen: Callable[[str, dt.datetime], bool]) -> None:
        """``seen(jti, expires_at)`` remembers a token id and answers whether it was known."""
        self.issuer = issuer
        self.client_id = client_id
        self.jwks = jwks
        self._seen = seen

    def validate(self, logout_token: str, *, now: dt.datetime) -> LogoutRequest:
        header = unverified_header(logout_token)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS or str(header.get("typ", "")).lower() != "logout+jwt":
            raise TokenInvalid("algorithm or type")
        key = self.jwks.key(str(header.get("kid", "")), now)
        try:
            claims = jwt.decode(logout_token, key, algorithms=[alg], audience=self.client_id,
                                issuer=self.issuer, options={
                                    "verify_exp": False, "verify_iat": False,
                                    "require": ["iss", "aud", "iat", "exp", "jti", "events"]})
        except InvalidTokenError as exc:
            raise TokenInvalid(type(exc).__name__) from None
        ts = now.timestamp()
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= ts - 30:
            raise TokenInvalid("expired")
        if not isinstance(claims["iat"], int | float) or \
                abs(ts - claims["iat"]) > _MAX_AGE.total_seconds():
            raise TokenInvalid("iat")
        events = claims["events"]
        if not isinstance(events, dict) or BACKCHANNEL_LOGOUT_EVENT not in events:
            raise TokenInvalid("not a logout token")
        if "nonce" in claims:
            raise TokenInvalid("a logout token has no nonce")
        sub, sid = str(claims.get("sub", "")), str(claims.get("sid", ""))
        if not sub and not sid:
            raise TokenInvalid("neither sub nor sid")
        jti = str(claims["jti"])
        if self._seen(jti, dt.datetime.fromtimestamp(claims["exp"], dt.UTC)):
            raise TokenInvalid("replayed")
        return LogoutRequest(sub=sub, sid=sid, jti=jti)
