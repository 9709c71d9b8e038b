"""The concrete failures of :mod:`payments`: each subclasses a category of
:mod:`payments.errors` (which the server maps to a status code) and sets a stable ``reason``.
Import them from :mod:`payments.errors`, which re-exports them."""

from __future__ import annotations

from payments.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidInput,
    NotFound,
)


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


class ReceiptQrInvalid(InvalidInput):
    """A receipt QR code whose signature, signer or fields did not verify. Deliberately one error:
    the finer cause is in ``detail`` (for the audit log and the verifier's operator), never in
    the message."""

    reason = "RECEIPT_QR_INVALID"

    def __init__(self, detail: str) -> None:
        super().__init__("the receipt QR code could not be verified")
        self.detail = detail


class StatementError(InvalidInput):
    """A bank statement or transaction list that cannot be read; the message says where."""

    reason = "INVALID_STATEMENT"


class TransmissionError(FailedPrecondition):
    """The tax authority did not accept a message (negative or missing acknowledgement)."""

    reason = "TAX_TRANSMISSION_FAILED"
