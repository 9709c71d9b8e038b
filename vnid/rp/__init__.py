"""Relying-party library for provincial systems: FAPI 2.0 login (PAR, PKCE, DPoP,
``private_key_jwt``) against the national identity provider, ID token validation with a minimum
assurance level, refresh, logout and back-channel logout, with the provider's keys cached."""

from vnid.rp.backchannel import BackchannelLogoutReceiver, LogoutRequest
from vnid.rp.client import PendingLogin, RelyingParty, RpSettings, TokenSet
from vnid.rp.dpop import DpopKey, jwk_thumbprint
from vnid.rp.errors import LoginFailed, ProviderError, TokenInvalid
from vnid.rp.id_token import IdTokenValidator, ValidatedIdToken
from vnid.rp.jwks import JwksCache
from vnid.rp.transport import HttpResponse, HttpTransport

__all__ = [
    "BackchannelLogoutReceiver",
    "DpopKey",
    "HttpResponse",
    "HttpTransport",
    "IdTokenValidator",
    "JwksCache",
    "LoginFailed",
    "LogoutRequest",
    "PendingLogin",
    "ProviderError",
    "RelyingParty",
    "RpSettings",
    "TokenInvalid",
    "TokenSet",
    "ValidatedIdToken",
    "jwk_thumbprint",
]
