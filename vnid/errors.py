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

