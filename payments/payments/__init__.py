"""Payments: the state graph, request_id idempotency, and the pure operations on a payment."""

from payments.payments.idempotency import StoredOutcome, check_request_id, replay, request_hash
from payments.payments.model import (
    Effects,
    Payer,
    Payment,
    PaymentLine,
    StatementMoney,
    Unsettled,
    apply_credit,
    apply_statement_money,
    cancel_payment,
    expire_payment,
    new_payment,
    open_payment,
    refund_payment,
)
from payments.payments.ports import ChannelStatus, PaymentChannel, StatusQuery
from payments.payments.states import (
    FINAL_STATES,
    OPEN_STATES,
    PAID_STATES,
    TRANSITIONS,
    PaymentState,
    Transition,
    check_transition,
)

__all__ = [
    "FINAL_STATES",
    "OPEN_STATES",
    "PAID_STATES",
    "TRANSITIONS",
    "ChannelStatus",
    "Effects",
    "Payer",
    "Payment",
    "PaymentChannel",
    "PaymentLine",
    "PaymentState",
    "StatementMoney",
    "StatusQuery",
    "StoredOutcome",
    "Transition",
    "Unsettled",
    "apply_credit",
    "apply_statement_money",
    "cancel_payment",
    "check_request_id",
    "check_transition",
    "expire_payment",
    "new_payment",
    "open_payment",
    "refund_payment",
    "replay",
    "request_hash",
]
