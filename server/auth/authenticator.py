"""Who is calling: mutual TLS (through the TLS front), bearer tokens, or plaintext development.

The gRPC authentication interceptor asks :class:`Authenticator` for the caller of each call. A
bearer token in the ``authorization`` metadata is checked by the configured
:class:`BearerAuthenticator` (the identity provider supplies one); otherwise the client certificate
of the call's TLS connection is verified, once per connection, and re-checked for expiry and
revocation on every call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Protocol

from server.auth.caller import Caller
from server.auth.certificates import ClientCertificateVerifier, VerifiedCertificate
from server.errors import NotAuthenticated
from server.tlsfront import PeerConnection, PeerRegistry

__all__ = ["Authenticator", "BearerAuthenticator"]


class BearerAuthenticator(Protocol):
    """Turns an OAuth 2.0 access token into a caller, or raises :class:`NotAuthenticated`."""

    def authenticate(self, token: str, metadata: Mapping[str, str], now: dt.datetime) -> Caller:
        ...


class Authenticator:
    def __init__(
        self,
        *,
        registry: PeerRegistry | None = None,
        verifier: ClientCertificateVerifier | None = None,
        plaintext_caller: Caller | None = None,
        bearer: BearerAuthenticator | None = None,
    ) -> None:
        if plaintext_caller is None and (registry is None or verifier is None):
            raise ValueError("mutual TLS needs both the peer registry and a certificate verifier")
        self._registry = registry
        self._verifier = verifier
        self._plaintext_caller = plaintext_caller
        self.bearer = bearer

    @property
    def verifier(self) -> ClientCertificateVerifier | None:
        return self._verifier

    def peer_connection(self, peer: str,
                        metadata: Mapping[str, str] | None = None) -> PeerConnection | None:
        """The TLS facts of the call's connection (the TLS front's registry, by peer name)."""
        return self._registry.get(peer) if self._registry is not None else None

    def authenticate(self, peer: str, metadata: Mapping[str, str], now: dt.datetime) -> Caller:
        authorization = metadata.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() not in {"bearer", "dpop"} or not token:
                raise NotAuthenticated("MALFORMED_AUTHORIZATION")
            if self.bearer is None:
                raise NotAuthenticated("BEARER_TOKENS_NOT_ACCEPTED")
            return self.bearer.authenticate(token.strip(), metadata, now)
        if self._plaintext_caller is not None:
            return self._plaintext_caller
        return self._certificate_caller(peer, metadata, now)

    def _missing_connection(self, peer: str, metadata: Mapping[str, str]) -> NotAuthenticated:
        # Not a connection relayed by the TLS front (nothing else can reach the socket, but
        # never assume).
        return NotAuthenticated("NOT_THROUGH_TLS_FRONT")

    def _certificate_caller(self, peer: str, metadata: Mapping[str, str],
                            now: dt.datetime) -> Caller:
        assert self._verifier is not None
        found = self.peer_connection(peer, metadata)
        if found is None:
            raise self._missing_connection(peer, metadata)
        connection = found.owner or found
        cached = connection.auth_cache
        if isinstance(cached, VerifiedCertificate):
            not_after = cached.leaf.not_valid_after_utc
            if now > not_after:
                raise NotAuthenticated("CERTIFICATE_EXPIRED")
            # Revocation can happen while a connection is open: ask again on every call.
            self._verifier.check_revocation(cached.leaf)
            return cached.caller
        if isinstance(cached, NotAuthenticated) and cached.detail != "CERTIFICATE_NOT_YET_VALID":
            raise NotAuthenticated(cached.detail)
        try:
            verified = self._verifier.verify(connection.leaf, connection.chain, now)
        except NotAuthenticated as exc:
            connection.auth_cache = exc
            raise
        connection.auth_cache = verified
        return verified.caller
