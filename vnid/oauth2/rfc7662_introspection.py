"""RFC 7662 OAuth 2.0 Token Introspection.

An authenticated client may introspect the tokens issued to it; a resource server registered with
``may_introspect`` may introspect any token. For any other token, and for unknown, expired or revoked
ones, the answer is only ``{"active": false}``. DPoP-bound tokens report their key as
``cnf.jkt`` (RFC 9449 §6.2).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vnid.assurance import amr_claim
from vnid.oauth2.errors import InvalidRequest, OAuthError
from vnid.oauth2.http import Request, Response
from vnid.oidc.core import ProviderCore, epoch, scope_text
from vnid.oidc.records import TokenKind, TokenRecord, handle_hash

__all__ = ["describe_token", "introspect"]


def describe_token(core: ProviderCore, record: TokenRecord | None, now: dt.datetime) -> dict[str, Any]:
    if record is None or not record.active(now):
        return {"active": False}
    client = core.client(record.client_id)
    if client is None:
        return {"active": False}
    out: dict[str, Any] = {
        "active": True, "iss": core.issuer, "client_id": record.client_id,
        "scope": scope_text(record.scope), "iat": epoch(record.issued_at),
        "exp": epoch(record.expires_at),
        "token_type": ("DPoP" if record.jkt else "Bearer") if record.kind is TokenKind.ACCESS
        else "refresh_token",
    }
    if record.account_id:
        out["sub"] = core.subject(client, record.account_id)
        out["aud"] = record.client_id
        out["acr"] = core.settings.acr.name(record.level)
        out["amr"] = amr_claim(record.methods)
        if record.auth_time is not None:
            out["auth_time"] = epoch(record.auth_time)
    if record.jkt:
        out["cnf"] = {"jkt": record.jkt}
    return out


def introspect(core: ProviderCore, request: Request, now: dt.datetime) -> Response:
    try:
        if request.method != "POST":
            raise InvalidRequest("use POST")
        with core.transaction(request) as tx:
            client = core.authenticate_client(tx, request, now)
            token = request.params.get("token", "")
            if not token:
                raise InvalidRequest("token is required")
            record = tx.token(handle_hash(token)) if len(token) <= 200 else None
        if record is not None and record.client_id != client.client_id and \
                not client.may_introspect:
            record = None
        return Response.json(describe_token(core, record, now))
    except OAuthError as exc:
        return Response.error(exc)
