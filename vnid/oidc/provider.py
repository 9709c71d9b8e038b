"""The OpenID provider: one object with one method per endpoint, built from the settings and the
ports. The server calls these and turns the results into HTTP; nothing here touches a socket."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from vnid.authn.passwords import BreachedPasswords
from vnid.jose.keys import KeyRing
from vnid.oauth2.http import Request, Response
from vnid.oauth2.rfc7009_revocation import revoke
from vnid.oauth2.rfc7662_introspection import describe_token, introspect
from vnid.oauth2.rfc8414_metadata import provider_metadata
from vnid.oauth2.rfc9126_par import pushed_authorization_request
from vnid.oidc.approvals import DeviceApi
from vnid.oidc.ciba import Ciba
from vnid.oidc.core import Outcome, ProviderCore
from vnid.oidc.login import LoginFlow
from vnid.oidc.logout import LogoutFlow
from vnid.oidc.ports import ClientRegistry, ProviderStore
from vnid.oidc.records import TokenRecord, handle_hash
from vnid.oidc.settings import ProviderSettings
from vnid.oidc.tokens import TokenEndpoint
from vnid.oidc.userinfo import userinfo

__all__ = ["OpenIDProvider"]


class OpenIDProvider:
    def __init__(self, settings: ProviderSettings, store: ProviderStore, clients: ClientRegistry,
                 keyring: Callable[[], KeyRing], *, pairwise_salt: bytes, nonce_secret: bytes,
                 breached: BreachedPasswords | None = None) -> None:
        self.core = ProviderCore(settings, store, clients, keyring, pairwise_salt=pairwise_salt,
                                 nonce_secret=nonce_secret, breached=breached)
        self.login = LoginFlow(self.core)
        self.logout = LogoutFlow(self.core)
        self.devices = DeviceApi(self.core)
        self.ciba = Ciba(self.core)
        self._token = TokenEndpoint(self.core)
        self._metadata: dict[str, Any] = provider_metadata(settings)

    @property
    def settings(self) -> ProviderSettings:
        return self.core.settings

    @property
    def issuer(self) -> str:
        return self.core.issuer

    def metadata(self) -> Mapping[str, Any]:
        return self._metadata

    def jwks(self) -> bytes:
        return self.core.keyring.jwks_json

    def par(self, request: Request, now: dt.datetime) -> Response:
        return pushed_authorization_request(self.core, request, now)

    def authorize(self, params: Mapping[str, str], session_cookie: str, now: dt.datetime,
                  request_id: str = "") -> Outcome:
        return self.login.authorize(params, session_cookie, now, request_id)

    def token(self, request: Request, now: dt.datetime) -> Response:
        return self._token.handle(request, now)

    def userinfo(self, request: Request, now: dt.datetime) -> Response:
        return userinfo(self.core, request, now)

    def introspect(self, request: Request, now: dt.datetime) -> Response:
        return introspect(self.core, request, now)

    def revoke(self, request: Request, now: dt.datetime) -> Response:
        return revoke(self.core, request, now)

    def backchannel_authentication(self, request: Request, now: dt.datetime) -> Response:
        return self.ciba.authenticate(request, now)

    def lookup_token(self, token: str) -> TokenRecord | None:
        """The stored record of an access or refresh token (for the server's bearer check)."""
        if not token or len(token) > 200:
            return None
        with self.core.store.reader() as tx:
            return tx.token(handle_hash(token))

    def describe_token(self, token: str, now: dt.datetime) -> dict[str, Any]:
        return describe_token(self.core, self.lookup_token(token), now)
