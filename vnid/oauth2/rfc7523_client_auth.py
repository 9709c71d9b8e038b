"""Client authentication at the token, PAR, introspection, revocation and CIBA endpoints.

``private_key_jwt`` (RFC 7523 §2.2 and OIDC Core §9) is the only method FAPI clients may use. The
assertion must:

* be signed with an algorithm the client's profile allows (never ``none``, never HMAC) by a key the
  client registered;
* have ``iss`` = ``sub`` = the client id, and the issuer identifier as ``aud``, a single string
  (FAPI 2.0 §5.3.2.1: an array, even one that holds the issuer, is refused, so an assertion made
  for several servers cannot be replayed at this one; classic clients may name the endpoint's URL
  instead, OIDC Core §9, still as a single string);
* live at most :data:`MAX_ASSERTION_LIFETIME` (``exp`` − ``iat``, or ``exp`` − now);
* carry a ``jti`` never seen before: the :class:`ReplayGuard` remembers it until it expires.

Classic OIDC clients may instead use ``client_secret_basic`` or ``client_secret_post`` (RFC 6749
§2.3.1). Whatever fails, the caller sees one ``invalid_client``; the reason is kept in ``detail``
for the audit log.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Protocol, TypeGuard
from urllib.parse import unquote

from vnid.jose.verify import BadJws, unverified_parts, verify_compact_jws
from vnid.oauth2.clients import Client
from vnid.oauth2.errors import InvalidClient, InvalidRequest
from vnid.oauth2.http import Request

__all__ = [
    "JWT_BEARER",
    "MAX_ASSERTION_LIFETIME",
    "ReplayGuard",
    "authenticate_client",
]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = dt.timedelta(minutes=2)
_SKEW = dt.timedelta(seconds=10)

ClientLookup = Callable[[str], Client | None]


class ReplayGuard(Protocol):
    def first_use(self, kind: str, value: str, expires_at: dt.datetime) -> bool:
        """Remember ``value`` until ``expires_at``; False if it was already remembered."""
        ...


def _fail(detail: str) -> InvalidClient:
    exc = InvalidClient("client authentication failed")
    exc.metadata["detail"] = detail
    return exc


def authenticate_client(request: Request, *, lookup: ClientLookup, issuer: str, now: dt.datetime,
                        replay: ReplayGuard) -> Client:
    params = request.params
    assertion_type = params.get("client_assertion_type")
    if assertion_type is not None or "client_assertion" in params:
        if assertion_type != JWT_BEARER or not params.get("client_assertion"):
            raise InvalidRequest("client_assertion_type must be " + JWT_BEARER)
        return _private_key_jwt(request, params["client_assertion"], lookup=lookup,
                                issuer=issuer, now=now, replay=replay)
    authorization = request.header("authorization") or ""
    if authorization[:6].lower() == "basic ":
        try:
            raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            client_id, _, secret = raw.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _fail("malformed basic credentials") from None
        return _secret(unquote(client_id), unquote(secret), "client_secret_basic", params, lookup)
    if "client_secret" in params:
        return _secret(params.get("client_id", ""), params["client_secret"], "client_secret_post",
                       params, lookup)
    raise _fail("no client authentication")


def _secret(client_id: str, secret: str, method: str, params: Mapping[str, str],
            lookup: ClientLookup) -> Client:
    client = lookup(client_id) if client_id else None
    if client is None or client.token_endpoint_auth_method != method:
        raise _fail("unknown client or wrong method")
    if params.get("client_id", client_id) != client_id:
        raise _fail("client_id mismatch")
    if not client.check_secret(secret):
        raise _fail("wrong secret")
    return client


def _private_key_jwt(request: Request, assertion: str, *, lookup: ClientLookup, issuer: str,
                     now: dt.datetime, replay: ReplayGuard) -> Client:
    try:
        header, unverified = unverified_parts(assertion)
    except BadJws:
        raise _fail("malformed assertion") from None
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id:
        raise _fail("assertion has no issuer")
    if request.params.get("client_id", client_id) != client_id:
        raise _fail("client_id does not match the assertion")
    client = lookup(client_id)
    if client is None or client.token_endpoint_auth_method != "private_key_jwt":
        raise _fail("unknown client or wrong method")
    try:
        _, claims = verify_compact_jws(assertion, list(client.keyset()), client.assertion_algs(),
                                       header=header)
    except BadJws as exc:
        raise _fail(f"assertion {exc}") from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _fail("iss and sub must be the client id")
    aud = claims.get("aud")
    if not isinstance(aud, str):
        raise _fail("aud is not a single string")
    accepted = {issuer} if client.is_fapi else {issuer, request.url}
    if aud not in accepted:
        raise _fail("audience is not this provider")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not _number(exp):
        raise _fail("assertion has no exp")
    expires = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expires <= now - _SKEW:
        raise _fail("assertion expired")
    start = now
    if iat is not None:
        if not _number(iat):
            raise _fail("iat is not a number")
        start = dt.datetime.fromtimestamp(iat, dt.UTC)
        if start > now + _SKEW:
            raise _fail("assertion issued in the future")
    if nbf is not None and (not _number(nbf) or
                            dt.datetime.fromtimestamp(nbf, dt.UTC) > now + _SKEW):
        raise _fail("assertion not yet valid")
    if expires - start > MAX_ASSERTION_LIFETIME:
        raise _fail("assertion lives longer than two minutes")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise _fail("assertion has no jti")
    if not replay.first_use("client_assertion", f"{client_id}\x00{jti}", expires + _SKEW):
        raise _fail("assertion replayed")
    return client


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
