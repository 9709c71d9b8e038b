"""OAuth 2.0 / OpenID Connect protocol errors, each carrying its wire ``error`` code.

The docstrings quote the defining specification. The HTTP status each error answers with is part of
the protocol (RFC 6749 §5.2, RFC 6750 §3.1, RFC 9449 §7.1), so it lives here too; the server only
serialises. ``description`` is safe to send: it never echoes secrets or tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from vnid.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidInput,
    NotPermitted,
    VnidError,
)

__all__ = [
    "AccessDenied",
    "AuthorizationPending",
    "ConsentRequired",
    "ExpiredToken",
    "InsufficientScope",
    "InteractionRequired",
    "InvalidClient",
    "InvalidDpopProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidRequestUri",
    "InvalidScope",
    "InvalidToken",
    "LoginRequired",
    "OAuthError",
    "RequestNotSupported",
    "SlowDown",
    "UnauthorizedClient",
    "UnknownUserId",
    "UnmetAuthenticationRequirements",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "UnsupportedTokenType",
    "UseDpopNonce",
]


class OAuthError(VnidError):
    """An error answered in the OAuth format (``error``, ``error_description``)."""

    error = "server_error"
    status = 400

    def __init__(self, description: str = "", *, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(description or self.error, reason=self.error.upper())
        self.description = description
        self.headers = list(headers)

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


class InvalidRequest(OAuthError, InvalidInput):
    """RFC 6749 §5.2: The request is missing a required parameter, includes an unsupported
    parameter value, repeats a parameter, or is otherwise malformed."""

    error = "invalid_request"


class InvalidClient(OAuthError, AuthenticationFailed):
    """RFC 6749 §5.2: Client authentication failed (unknown client, no client authentication
    included, or unsupported authentication method)."""

    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError, InvalidInput):
    """RFC 6749 §5.2: The provided authorization grant or refresh token is invalid, expired,
    revoked, does not match the redirection URI used in the authorization request, or was issued
    to another client."""

    error = "invalid_grant"


class UnauthorizedClient(OAuthError, NotPermitted):
    """RFC 6749 §5.2: The authenticated client is not authorized to use this grant type."""

    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError, InvalidInput):
    """RFC 6749 §5.2: The grant type is not supported by the authorization server."""

    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError, InvalidInput):
    """RFC 6749 §4.1.2.1: The authorization server does not support obtaining an authorization
    code using this method."""

    error = "unsupported_response_type"


class InvalidScope(OAuthError, InvalidInput):
    """RFC 6749 §5.2: The requested scope is invalid, unknown, malformed, or exceeds the scope
    granted by the resource owner."""

    error = "invalid_scope"


class AccessDenied(OAuthError, NotPermitted):
    """RFC 6749 §4.1.2.1: The resource owner or authorization server denied the request."""

    error = "access_denied"


class LoginRequired(OAuthError, FailedPrecondition):
    """OIDC Core §3.1.2.6: The Authorization Server requires End-User authentication."""

    error = "login_required"


class InteractionRequired(OAuthError, FailedPrecondition):
    """OIDC Core §3.1.2.6: The Authorization Server requires End-User interaction of some form
    to proceed."""

    error = "interaction_required"


class ConsentRequired(OAuthError, FailedPrecondition):
    """OIDC Core §3.1.2.6: The Authorization Server requires End-User consent."""

    error = "consent_required"


class UnmetAuthenticationRequirements(OAuthError, FailedPrecondition):
    """OpenID Connect Core Error Code unmet_authentication_requirements 1.0: The Authorization
    Server is unable to meet the requirements of the Relying Party for the authentication of the
    End-User."""

    error = "unmet_authentication_requirements"


class InvalidRequestUri(OAuthError, InvalidInput):
    """OIDC Core §3.1.2.6 / RFC 9126 §4: The request_uri is invalid, expired or already used."""

    error = "invalid_request_uri"


class RequestNotSupported(OAuthError, InvalidInput):
    """OIDC Core §3.1.2.6: The OP does not support use of the request parameter."""

    error = "request_not_supported"


class InvalidDpopProof(OAuthError, AuthenticationFailed):
    """RFC 9449 §5: The DPoP proof is invalid."""

    error = "invalid_dpop_proof"


class UseDpopNonce(OAuthError, AuthenticationFailed):
    """RFC 9449 §8: The authorization server requires a nonce value in the DPoP proof; the
    ``DPoP-Nonce`` header carries the value to use."""

    error = "use_dpop_nonce"


class InvalidToken(OAuthError, AuthenticationFailed):
    """RFC 6750 §3.1: The access token provided is expired, revoked, malformed, or invalid."""

    error = "invalid_token"
    status = 401


class InsufficientScope(OAuthError, NotPermitted):
    """RFC 6750 §3.1: The request requires higher privileges than provided by the access token."""

    error = "insufficient_scope"
    status = 403


class UnsupportedTokenType(OAuthError, InvalidInput):
    """RFC 7009 §2.2.1: The authorization server does not support the revocation of the
    presented token type."""

    error = "unsupported_token_type"


class AuthorizationPending(OAuthError, FailedPrecondition):
    """OpenID CIBA Core §11: The authorization request is still pending."""

    error = "authorization_pending"


class SlowDown(OAuthError, FailedPrecondition):
    """OpenID CIBA Core §11: The client polls too often; increase the interval by 5 seconds."""

    error = "slow_down"


class ExpiredToken(OAuthError, FailedPrecondition):
    """OpenID CIBA Core §11: The auth_req_id has expired."""

    error = "expired_token"


class UnknownUserId(OAuthError, InvalidInput):
    """OpenID CIBA Core §13: The OP is not able to identify which end-user the client wishes to
    be authenticated by the hint provided."""

    error = "unknown_user_id"
