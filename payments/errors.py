"""Exceptions raised by :mod:`payments`.

Every exception carries a stable machine ``reason`` (UPPER_SNAKE) and a message that is safe to show
to a caller: it never contains secrets, passwords, tokens or personal data beyond what the caller sent.
The category classes (``InvalidInput``, ``NotFound``, ...) are what the server maps to transport
status codes; concrete errors subclass one of them.
"""

from __future__ import annotations

from collections.abc import Mapping


class PaymentsError(Exception):
    """Base class of every error raised by :mod:`payments`."""

    reason: str = "PAYMENTS_ERROR"

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


class InvalidInput(PaymentsError):
    """The input is malformed or violates a rule; retrying the same input fails again."""

    reason = "INVALID_INPUT"


class NotFound(PaymentsError):
    """The named object does not exist (or the caller may not know that it does)."""

    reason = "NOT_FOUND"


class Conflict(PaymentsError):
    """The request conflicts with the current state (already exists, concurrent change)."""

    reason = "CONFLICT"


class FailedPrecondition(PaymentsError):
    """The system is not in a state where the operation is allowed (locked, expired, ...)."""

    reason = "FAILED_PRECONDITION"


class AuthenticationFailed(PaymentsError):
    """Credentials were missing or did not verify. Deliberately says nothing about which check."""

    reason = "AUTHENTICATION_FAILED"


class NotPermitted(PaymentsError):
    """The authenticated subject is not allowed to do this."""

    reason = "NOT_PERMITTED"


class RateLimited(PaymentsError):
    """Too many attempts; try again later."""

    reason = "RATE_LIMITED"


# The concrete errors (each a subclass of one category above, with its own reason) live in
# payments.failures and are re-exported here, so callers write ``payments.errors.InvalidAmount``.
from payments.failures import (  # noqa: E402
    CallbackRejected,
    CatalogueError,
    InvalidAccount,
    InvalidAmount,
    InvalidQrPayload,
    InvalidReference,
    InvalidTransition,
    PaymentExpired,
    ReceiptNumberingError,
    ReceiptQrInvalid,
    RefundExceedsCollected,
    RequestIdReused,
    StatementError,
    TransmissionError,
    UnbalancedTransaction,
    UnknownProcedure,
)

__all__ = [
    "AuthenticationFailed",
    "CallbackRejected",
    "CatalogueError",
    "Conflict",
    "FailedPrecondition",
    "InvalidAccount",
    "InvalidAmount",
    "InvalidInput",
    "InvalidQrPayload",
    "InvalidReference",
    "InvalidTransition",
    "NotFound",
    "NotPermitted",
    "PaymentExpired",
    "PaymentsError",
    "RateLimited",
    "ReceiptNumberingError",
    "ReceiptQrInvalid",
    "RefundExceedsCollected",
    "RequestIdReused",
    "StatementError",
    "TransmissionError",
    "UnbalancedTransaction",
    "UnknownProcedure",
]
