"""OAuth 2.0 access tokens as gRPC credentials (``authorization: Bearer <token>``).

Only client-credentials tokens of registered service clients are accepted: they carry the agency,
province and scopes of the client's registration (a citizen's token is for the citizen's services,
not for the gRPC API). The token must be active (not expired, not revoked) at the moment of the call;
the check reads the database on every call, so a revocation takes effect at once. DPoP-bound tokens
are refused here because a gRPC call carries no proof of the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from server.auth.caller import AuthMethod, Caller
from server.errors import NotAuthenticated
from vnid.oidc.provider import OpenIDProvider
from vnid.oidc.records import TokenKind

__all__ = ["TokenBearerAuthenticator"]


class TokenBearerAuthenticator:
    """Implements :class:`server.auth.authenticator.BearerAuthenticator`."""

    def __init__(self, provider: OpenIDProvider) -> None:
        self._provider = provider

    def authenticate(self, token: str, metadata: Mapping[str, str], now: dt.datetime) -> Caller:
        record = self._provider.lookup_token(token)
        if record is None or record.kind is not TokenKind.ACCESS:
            raise NotAuthenticated("TOKEN_UNKNOWN")
        if record.revoked_at is not None:
            raise NotAuthenticated("TOKEN_REVOKED")
        if now >= record.expires_at:
            raise NotAuthenticated("TOKEN_EXPIRED")
        if record.account_id:
            raise NotAuthenticated("TOKEN_NOT_FOR_SERVICES")
        if record.jkt:
            raise NotAuthenticated("TOKEN_DPOP_BOUND")
        client = self._provider.core.client(record.client_id)
        if client is None or "client_credentials" not in client.grant_types:
            raise NotAuthenticated("TOKEN_CLIENT_UNKNOWN")
        return Caller(
            display_name=client.client_id,
            agency_code=client.agency_code,
            province_code=client.province_code,
            scopes=frozenset(record.scope & client.service_scopes),
            provinces=frozenset(client.provinces),
            method=AuthMethod.BEARER_TOKEN,
        )
