"""Exceptions raised by :mod:`vnid`.

Every exception carries a stable machine ``reason`` (UPPER_SNAKE) and a message that is safe to show
to a caller: it never contains secrets, passwords, tokens or personal data beyond what the caller sent.
The category classes (``InvalidInput``, ``NotFound``, ...) are what the server maps to transport
status codes; concrete errors subclass one of them.
"""

from __future__ import annotations

from collections.abc import Mapping


class VnidError(Exception):
    """Base class of every error raised by :mod:`vnid`."""

    reason: str = "VNID_ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidInput(VnidError):
    """The input is malformed or violates a rule; retrying the same input fails again."""

    reason = "INVALID_INPUT"


class NotFound(VnidError):
    """The named object does not exist (or the caller may not know that it does)."""

    reason = "NOT_FOUND"


class Conflict(VnidError):
    """The request conflicts with the current state (already exists, concurrent change)."""

    reason = "CONFLICT"


class FailedPrecondition(VnidError):
    """The system is not in a state where the operation is allowed (locked, expired, ...)."""

    reason = "FAILED_PRECONDITION"


class AuthenticationFailed(VnidError):
    """Credentials were missing or did not verify. Deliberately says nothing about which check."""

    reason = "AUTHENTICATION_FAILED"


class NotPermitted(VnidError):
    """The authenticated subject is not allowed to do this."""

    reason = "NOT_PERMITTED"


class RateLimited(VnidError):
    """Too many attempts; try again later."""

    reason = "RATE_LIMITED"


# --------------------------------------------------------------------------- concrete errors


class InvalidPersonalId(InvalidInput):
    """The 12-digit personal identification number is malformed or contradicts the person's data."""

    reason = "INVALID_PERSONAL_ID"


class InvalidTaxCode(InvalidInput):
    """The organisation's tax code (mã số thuế) is malformed or its check digit is wrong."""

    reason = "INVALID_TAX_CODE"


class NotEligible(FailedPrecondition):
    """The person may not hold an account of this kind or level (age, residence card, proofing)."""

    reason = "NOT_ELIGIBLE"


class WeakPassword(InvalidInput):
    """The password is too short, too common, derived from the account's own data, or breached."""

    reason = "WEAK_PASSWORD"


class AccountLocked(FailedPrecondition):
    """The account is locked (by an official or after repeated failures)."""

    reason = "ACCOUNT_LOCKED"


class AccountExpired(FailedPrecondition):
    """The identity card behind this level-2 account has expired."""

    reason = "ACCOUNT_EXPIRED"


class TooManyAttempts(RateLimited):
    """Too many failed attempts for this account or source address; ``retry_after`` seconds."""

    reason = "TOO_MANY_ATTEMPTS"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, metadata={"retry_after": str(retry_after)})
        self.retry_after = retry_after


class InvalidCredentials(AuthenticationFailed):
    """The identifier, password, one-time code or device signature did not verify."""

    reason = "INVALID_CREDENTIALS"


class DeviceNotRegistered(FailedPrecondition):
    """The account has no active device key (the citizen app is not set up)."""

    reason = "DEVICE_NOT_REGISTERED"
