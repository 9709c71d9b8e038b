"""Errors of the relying-party library."""

from __future__ import annotations

from vnid.errors import AuthenticationFailed, FailedPrecondition, InvalidInput

__all__ = ["LoginFailed", "ProviderError", "TokenInvalid"]


class TokenInvalid(AuthenticationFailed):
    """An ID token or logout token did not validate. The message is deliberately the same for every
    cause; ``detail`` says which check failed, for the relying party's own log."""

    reason = "TOKEN_INVALID"

    def __init__(self, detail: str) -> None:
        super().__init__("the token did not validate")
        self.detail = detail


class LoginFailed(InvalidInput):
    """The authorization response is an error, or does not belong to the login in progress."""

    reason = "LOGIN_FAILED"


class ProviderError(FailedPrecondition):
    """The provider answered with an OAuth error (``error`` holds its code)."""

    reason = "PROVIDER_ERROR"

    def __init__(self, error: str, description: str = "", status: int = 0) -> None:
        super().__init__(f"the provider answered {error}" + (f": {description}" if description
                                                               else ""))
        self.error = error
        self.description = description
        self.status = status
