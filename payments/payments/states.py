"""The payment state graph, declared once (after GOV.UK Pay's payment states).

::

    created ──> awaiting_payment ──> paid ──> partially_refunded ──> refunded
       │              │  │  └──> partially_paid ──> paid | overpaid
       │              │  └──> overpaid ──> partially_refunded | refunded
       └──> cancelled <┘──> expired

Money confirmed after a payment expired or was cancelled is never silently applied: it is held as
a reconciliation exception, and a finance officer's "accept late payment" moves the payment from
expired/cancelled to paid (the only edges out of those states, marked ``resolution_only``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from payments.errors import InvalidTransition

__all__ = [
    "FINAL_STATES",
    "OPEN_STATES",
    "PAID_STATES",
    "RESOLUTION_ONLY",
    "TRANSITIONS",
    "PaymentState",
    "Transition",
    "check_transition",
    "state_after_credit",
    "state_after_refund",
]


class PaymentState(StrEnum):
    """The life of a payment; ``check_transition`` says which changes are allowed."""
    CREATED = "created"
    AWAITING_PAYMENT = "awaiting_payment"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERPAID = "overpaid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


S = PaymentState
TRANSITIONS: Mapping[PaymentState, frozenset[PaymentState]] = {
    S.CREATED: frozenset({S.AWAITING_PAYMENT, S.CANCELLED, S.EXPIRED}),
    S.AWAITING_PAYMENT: frozenset({S.PARTIALLY_PAID, S.PAID, S.OVERPAID, S.EXPIRED,
                                   S.CANCELLED}),
    S.PARTIALLY_PAID: frozenset({S.PARTIALLY_PAID, S.PAID, S.OVERPAID, S.EXPIRED,
                                 S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PAID: frozenset({S.OVERPAID, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.OVERPAID: frozenset({S.OVERPAID, S.PAID, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.EXPIRED: frozenset({S.PAID, S.OVERPAID, S.PARTIALLY_PAID}),
    S.CANCELLED: frozenset({S.PAID, S.OVERPAID, S.PARTIALLY_PAID}),
    S.REFUNDED: frozenset(),
}
# Edges that only a resolved reconciliation exception may take (late money).
RESOLUTION_ONLY = frozenset({(s, t) for s in (S.EXPIRED, S.CANCELLED) for t in TRANSITIONS[s]})
OPEN_STATES = frozenset({S.CREATED, S.AWAITING_PAYMENT, S.PARTIALLY_PAID})
PAID_STATES = frozenset({S.PAID, S.OVERPAID, S.PARTIALLY_REFUNDED, S.REFUNDED})
FINAL_STATES = frozenset({S.REFUNDED})


@dataclass(frozen=True, slots=True)
class Transition:
    """One audited change of state."""

    payment: str
    from_state: PaymentState
    to_state: PaymentState
    at: dt.datetime
    reason: str
    actor: str


def check_transition(current: PaymentState, target: PaymentState, *,
                     resolution: bool = False) -> None:
    """Raise :class:`~payments.errors.InvalidTransition` unless a payment may go from ``current`` to
    ``target`` (some changes only through a resolved reconciliation exception)."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"a payment cannot go from {current} to {target}",
                                metadata={"from": current.value, "to": target.value})
    if (current, target) in RESOLUTION_ONLY and not resolution:
        raise InvalidTransition(f"a {current} payment only changes through a resolved "
                                "reconciliation exception",
                                metadata={"from": current.value, "to": target.value})


def state_after_credit(amount_due: int, collected: int) -> PaymentState:
    """The state once ``collected`` đồng in total have been confirmed against ``amount_due``."""
    if collected < amount_due:
        return S.PARTIALLY_PAID
    return S.PAID if collected == amount_due else S.OVERPAID


def state_after_refund(collected: int, refunded: int, current: PaymentState) -> PaymentState:
    if refunded >= collected:
        return S.REFUNDED
    if current is S.PARTIALLY_PAID:
        return S.PARTIALLY_PAID if refunded == 0 else S.PARTIALLY_REFUNDED
    return S.PARTIALLY_REFUNDED
