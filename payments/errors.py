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


# --------------------------------------------------------------------------- concrete errors
class InvalidAmount(InvalidInput):
    """An amount is not a non-negative integer number of đồng (or breaks a channel's limit)."""

    reason = "INVALID_AMOUNT"


class CatalogueError(InvalidInput):
    """A fee catalogue file is invalid; the message names the line (and ``metadata['line']``)."""

    reason = "INVALID_CATALOGUE"

    def __init__(self, message: str, *, line: int | None = None, source: str = "") -> None:
        where = f"{source or 'catalogue'}, line {line}: " if line is not None else ""
        meta = {"line": str(line)} if line is not None else {}
        super().__init__(where + message, metadata=meta)
        self.line = line


class UnknownProcedure(NotFound):
    """The fee catalogue has no such procedure (or no fee level in force on that date)."""

    reason = "UNKNOWN_PROCEDURE"


class InvalidAccount(InvalidInput):
    """A collection account's bank BIN, number or name is malformed."""

    reason = "INVALID_COLLECTION_ACCOUNT"


class InvalidTransition(FailedPrecondition):
    """The payment's state graph does not allow this change."""

    reason = "INVALID_STATE_TRANSITION"


class PaymentExpired(FailedPrecondition):
    reason = "PAYMENT_EXPIRED"


class RequestIdReused(InvalidInput):
    """A request_id was used before with a different request (AIP-155)."""

    reason = "REQUEST_ID_REUSED"


class RefundExceedsCollected(FailedPrecondition):
    """The refund would return more than was collected (net of earlier refunds)."""

    reason = "REFUND_EXCEEDS_COLLECTED"


class UnbalancedTransaction(InvalidInput):
    """A ledger transaction whose debits and credits differ (or that has a non-positive amount)."""

    reason = "UNBALANCED_LEDGER_TRANSACTION"


class InvalidReference(InvalidInput):
    """An ISO 11649 creditor reference that is malformed or fails its check digits."""

    reason = "INVALID_CREDITOR_REFERENCE"


class InvalidQrPayload(InvalidInput):
    """A VietQR/EMVCo payload that does not parse or whose CRC is wrong."""

    reason = "INVALID_QR_PAYLOAD"


class CallbackRejected(AuthenticationFailed):
    """A channel message whose signature, time window or parties did not verify. Deliberately one
    error: the finer cause is in ``detail`` (for the audit log), never in the message."""

    reason = "CALLBACK_REJECTED"

    def __init__(self, detail: str) -> None:
        super().__init__("the message could not be verified")
        self.detail = detail


class ReceiptNumberingError(FailedPrecondition):
    reason = "RECEIPT_NUMBERING"


class StatementError(InvalidInput):
    """A bank statement or transaction list that cannot be read; the message says where."""

    reason = "INVALID_STATEMENT"


class TransmissionError(FailedPrecondition):
    """The tax authority did not accept a message (negative or missing acknowledgement)."""

    reason = "TAX_TRANSMISSION_FAILED"
