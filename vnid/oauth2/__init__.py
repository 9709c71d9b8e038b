"""OAuth 2.0 pieces, one module per specification (RFC 7636, 7523, 9126, 9449, 7662, 7009, 8414),
the client registrations and the protocol errors."""

from vnid.oauth2.clients import Client, ClientProfile
from vnid.oauth2.errors import OAuthError
from vnid.oauth2.http import Request, Response

__all__ = ["Client", "ClientProfile", "OAuthError", "Request", "Response"]
