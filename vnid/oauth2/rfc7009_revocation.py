"""RFC 7009 OAuth 2.0 Token Revocation.

The client that holds a token may revoke it. Revoking a refresh token revokes the whole grant (every
access and refresh token issued from the same authorization), as §2.1 recommends; revoking an access
token revokes that token. The answer is 200 whether or not the token was known (§2.2), so the
endpoint tells nothing about tokens.
"""

from __future__ import annotations

import datetime as dt

from vnid.oauth2.errors import InvalidRequest, OAuthError
from vnid.oauth2.http import Request, Response
from vnid.oidc.core import ProviderCore
from vnid.oidc.ports import IdentityEvent
from vnid.oidc.records import TokenKind, handle_hash

__all__ = ["revoke"]


def revoke(core: ProviderCore, request: Request, now: dt.datetime) -> Response:
    try:
        if request.method != "POST":
            raise InvalidRequest("use POST")
        with core.transaction(request) as tx:
            client = core.authenticate_client(tx, request, now)
            token = request.params.get("token", "")
            if not token:
                raise InvalidRequest("token is required")
            record = tx.token(handle_hash(token)) if len(token) <= 200 else None
            if record is not None and record.client_id == client.client_id and \
                    record.revoked_at is None:
                if record.kind is TokenKind.REFRESH:
                    count = tx.revoke_grant(record.grant_id, now)
                else:
                    tx.revoke_token(record.token_hash, now)
                    count = 1
                tx.record(IdentityEvent(action="token.revoke", account_id=record.account_id,
                                        client_id=client.client_id,
                                        details={"kind": record.kind.value, "revoked": count}))
        return Response(200, [("cache-control", "no-store")])
    except OAuthError as exc:
        return Response.error(exc)
