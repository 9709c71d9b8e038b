"""Payments and what happens to them, as pure functions returning the new payment together with
the audited transitions and the ledger transactions that must be stored with it (in one database
transaction: see ``server/payments``).

Ledger effects (see :mod:`payments.ledger.core` for the accounts):

* opening (created -> awaiting_payment): Dr RECEIVABLES due / Cr REVENUE per line;
* money in: Dr CLEARING:<channel> (or SUSPENSE when an exception is resolved) / Cr RECEIVABLES up
  to what is outstanding, Cr OVERPAYMENTS beyond it;
* statement money applied by a finance officer: Dr SUSPENSE / Cr CLEARING:<channel> for the part
  that shows channel money the payment already received (it is not credited again), and only the
  rest as money in (from SUSPENSE);
* expiry or cancellation: the opening is reversed for what was not collected, and money already
  collected on the payment moves to OVERPAYMENTS (held for refund);
* refund: Dr OVERPAYMENTS (held money first) and REVENUE / Cr REFUNDS_PAYABLE.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from payments.errors import (
    InvalidInput,
    InvalidTransition,
    PaymentExpired,
    RefundExceedsCollected,
)
from payments.fees.catalogue import FeeKind, Quote
from payments.ledger.core import Account, LedgerTransaction, transaction
from payments.money import check_amount, require_utc
from payments.payments.states import (
    OPEN_STATES,
    PAID_STATES,
    PaymentState,
    Transition,
    check_transition,
    state_after_credit,
)

__all__ = [
    "Effects",
    "Payer",
    "Payment",
    "PaymentLine",
    "StatementMoney",
    "Unsettled",
    "apply_credit",
    "apply_statement_money",
    "cancel_payment",
    "expire_payment",
    "new_payment",
    "open_payment",
    "refund_payment",
]

S = PaymentState
_ID = re.compile(r"^[a-z0-9]{8,40}$")


@dataclass(frozen=True, slots=True)
class Payer:
    """Who pays: a name, and optionally a tax code, address, personal ID number and e-mail for the receipt."""
    name: str
    tax_code: str = ""
    address: str = ""
    id_number: str = ""  # personal ID (12 digits) when the payer gave one
    email: str = ""


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """One fee item of a payment, with the body that collects it."""
    item_code: str
    name: str
    kind: FeeKind
    collector: str
    amount: int


@dataclass(frozen=True)
class Payment:
    """A payment of a dossier's fees: what is due (its lines), through which channel, the ISO 11649 reference
    every channel carries, what was collected or refunded, and its state."""
    id: str
    agency_code: str
    province_code: str
    procedure_code: str
    dossier_code: str
    payer: Payer
    lines: tuple[PaymentLine, ...]
    reference: str  # ISO 11649 creditor reference carried by every channel
    channel: str
    created_at: dt.datetime
    expires_at: dt.datetime
    state: PaymentState = S.CREATED
    collected: int = 0
    refunded: int = 0
    held: int = 0  # money on OVERPAYMENTS for this payment (excess, or collected before expiry)
    line_refunded: tuple[int, ...] = ()
    paid_at: dt.datetime | None = None

    @property
    def amount_due(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def outstanding(self) -> int:
        if self.state not in OPEN_STATES:
            return 0
        return max(0, self.amount_due - self.collected)

    @property
    def refundable(self) -> int:
        return self.collected - self.refunded

    @property
    def name(self) -> str:
        return f"payments/{self.id}"


@dataclass(frozen=True)
class Effects:
    """What an operation produced: the payment after it, and what to store with it."""

    payment: Payment
    transitions: tuple[Transition, ...] = ()
    ledger: tuple[LedgerTransaction, ...] = ()
    became_paid: bool = False
    notes: tuple[str, ...] = field(default=())


def new_payment(payment_id: str, quote: Quote, *, agency_code: str, dossier_code: str,
                payer: Payer, reference: str, channel: str, now: dt.datetime,
                ttl: dt.timedelta) -> Payment:
    """A new payment for ``quote``: validated, due in full, awaiting payment until ``now + ttl``."""
    if not _ID.fullmatch(payment_id):
        raise InvalidInput("payment id must be 8-40 lower-case letters and digits")
    if not payer.name.strip():
        raise InvalidInput("payer name is required", metadata={"field": "payer.name"})
    now = require_utc(now)
    lines = tuple(PaymentLine(q.item_code, q.name, q.kind, q.collector or agency_code, q.amount)
                  for q in quote.lines if q.amount > 0)
    if not lines:
        raise InvalidInput("nothing to pay: every fee of this dossier is zero")
    payment = Payment(payment_id, agency_code, quote.province, quote.procedure_code,
                      dossier_code, payer, lines, reference, channel, now, now + ttl,
                      line_refunded=tuple(0 for _ in lines))
    check_amount(payment.amount_due)
    return payment


def _move(p: Payment, to: PaymentState, at: dt.datetime, reason: str, actor: str,
          resolution: bool = False) -> Transition:
    check_transition(p.state, to, resolution=resolution)
    return Transition(p.id, p.state, to, at, reason, actor)


def _assessment(p: Payment, at: dt.datetime, key: str) -> LedgerTransaction:
    credits: dict[str, int] = {}
    for line in p.lines:
        account = Account.revenue(line.kind.value, line.collector)
        credits[account] = credits.get(account, 0) + line.amount
    return transaction(key, at, "assessment", {Account.RECEIVABLES: p.amount_due}, credits,
                       payment=p.id, memo="fees assessed")


def open_payment(p: Payment, *, now: dt.datetime, actor: str) -> Effects:
    """created -> awaiting_payment (the channel has been asked for the money)."""
    t = _move(p, S.AWAITING_PAYMENT, now, "channel initiated", actor)
    tx = _assessment(p, now, f"{p.id}:assess")
    return Effects(dataclasses.replace(p, state=S.AWAITING_PAYMENT), (t,), (tx,))


def apply_credit(p: Payment, amount: int, *, source: str, key: str, now: dt.datetime,
                 actor: str, resolution: bool = False) -> Effects:
    """Money confirmed for ``p``: ``source`` is the debited account (``CLEARING:<channel>``, or
    ``SUSPENSE`` when a finance officer applies unidentified money). ``key`` identifies the money
    (channel transaction id) and makes the ledger posting unique.

    Money for an expired or cancelled payment is refused unless ``resolution`` is set: the caller
    holds it as a reconciliation exception instead.
    """
    check_amount(amount)
    now = require_utc(now)
    if p.state is S.REFUNDED:
        # Refunded is final: nothing could ever refund money held on it, so it goes back to
        # its sender instead.
        raise InvalidTransition("the payment is fully refunded and takes no more money: "
                                "return the money to its sender (refund_to_sender)",
                                reason="PAYMENT_REFUNDED",
                                metadata={"payment": p.id, "from": p.state.value})
    txs: list[LedgerTransaction] = []
    transitions: list[Transition] = []
    state, collected, held = p.state, p.collected, p.held
    if state in (S.EXPIRED, S.CANCELLED):
        if not resolution:
            raise PaymentExpired("the payment is no longer open", metadata={"payment": p.id})
        # Re-assess the fees, apply the money held since expiry, then the new money.
        txs.append(_assessment(p, now, f"{key}:reassess"))
        reapplied = min(held, p.amount_due)
        if reapplied:
            txs.append(transaction(f"{key}:reapply", now, "reapply",
                                   {Account.OVERPAYMENTS: reapplied},
                                   {Account.RECEIVABLES: reapplied}, payment=p.id))
            held -= reapplied
        outstanding = p.amount_due - reapplied
    elif state in OPEN_STATES:
        if state is S.CREATED:
            raise InvalidInput("the payment has not been opened on a channel")
        outstanding = p.amount_due - collected
    else:
        outstanding = 0
    applied = min(amount, max(outstanding, 0))
    excess = amount - applied
    txs.append(transaction(key, now, "collection", {source: amount},
                           {Account.RECEIVABLES: applied, Account.OVERPAYMENTS: excess},
                           payment=p.id, memo="money confirmed"))
    collected += amount
    held += excess
    if state in (S.EXPIRED, S.CANCELLED) or state in OPEN_STATES:
        target = state_after_credit(p.amount_due, collected - p.refunded)
    elif state is S.PAID:
        target = S.OVERPAID
    else:
        target = state  # already overpaid or refunding: the money is held, the state stays
    became_paid = target in (S.PAID, S.OVERPAID) and p.state not in PAID_STATES
    if target != state or state is S.PARTIALLY_PAID:
        transitions.append(_move(p, target, now, "money confirmed", actor, resolution))
    paid_at = p.paid_at or (now if became_paid else None)
    expires_at = p.expires_at
    if state in (S.EXPIRED, S.CANCELLED) and target is S.PARTIALLY_PAID:
        # Re-opened by a finance officer with money that does not cover the fees: the rest is
        # due within a fresh payment window, not at the next expiry sweep (which would undo
        # the officer's decision minutes later).
        expires_at = max(p.expires_at, now + (p.expires_at - p.created_at))
    new = dataclasses.replace(p, state=target, collected=collected, held=held, paid_at=paid_at,
                              expires_at=expires_at)
    return Effects(new, tuple(transitions), tuple(txs), became_paid)


class Unsettled(NamedTuple):
    """Money a payment's channel confirmed (applied or held) that no statement has shown yet,
    and the CLEARING account it waits on."""

    payment: str
    clearing: str
    amount: int


@dataclass(frozen=True)
class StatementMoney:
    """What applying statement money to a payment did: ``settled`` is the channel money of each
    payment the line shows (moved SUSPENSE -> CLEARING, not credited again), ``credited`` the
    new money credited to the payment; ``effects`` holds the payment and everything to store."""

    settled: tuple[tuple[str, int], ...]
    credited: int
    effects: Effects


def apply_statement_money(p: Payment, amount: int, *, unsettled: Sequence[Unsettled], key: str,
                          now: dt.datetime, actor: str) -> StatementMoney:
    """A finance officer applies ``amount`` đồng of a bank statement (held on SUSPENSE) to ``p``.

    The bank shows all the money a channel confirms, so the line first shows the channel money
    not yet seen on a statement of the payments it is for (``unsettled``, in the order the line
    names them, ``p``'s first when it has any): that part settles their CLEARING account
    (Dr SUSPENSE / Cr CLEARING) and is not credited again — the payment received it when the
    channel confirmed it. Only the rest is money the payment has not received yet (a second
    transfer, more than the channel confirmed) and is credited with :func:`apply_credit`:
    RECEIVABLES up to what is outstanding, OVERPAYMENTS (held for refund) beyond it, an expired
    or cancelled payment re-opened as a late payment."""
    check_amount(amount)
    now = require_utc(now)
    rest = amount
    settled: list[tuple[str, int]] = []
    credits: dict[str, int] = {}
    for u in unsettled:
        take = min(rest, max(u.amount, 0))
        if take:
            settled.append((u.payment, take))
            credits[u.clearing] = credits.get(u.clearing, 0) + take
            rest -= take
    txs: list[LedgerTransaction] = []
    if credits:
        txs.append(transaction(f"{key}:settle", now, "settlement",
                               {Account.SUSPENSE: amount - rest}, credits,
                               payment=settled[0][0] if len(settled) == 1 else "",
                               memo="statement shows money the channel confirmed"))
    if not rest:
        return StatementMoney(tuple(settled), 0, Effects(p, (), tuple(txs)))
    fx = apply_credit(p, rest, source=Account.SUSPENSE, key=key, now=now, actor=actor,
                      resolution=True)
    return StatementMoney(tuple(settled), rest,
                          dataclasses.replace(fx, ledger=tuple(txs) + fx.ledger))


def _close(p: Payment, to: PaymentState, now: dt.datetime, reason: str, actor: str) -> Effects:
    t = _move(p, to, now, reason, actor)
    txs: list[LedgerTransaction] = []
    if p.state is not S.CREATED:
        # Undo the assessment, then hold what was collected for refund.
        debits: dict[str, int] = {}
        for line in p.lines:
            account = Account.revenue(line.kind.value, line.collector)
            debits[account] = debits.get(account, 0) + line.amount
        # A payment re-opened by a resolution may close again (in a later payment window):
        # each closing has its own keys.
        key = f"{p.id}:{to.value}:{p.expires_at:%Y%m%dT%H%M%S%f}"
        txs.append(transaction(key, now, to.value, debits,
                               {Account.RECEIVABLES: p.amount_due}, payment=p.id))
        # What was applied to the fees moves to OVERPAYMENTS: collected less what is held
        # already and less what was refunded (a payment re-opened after an expiry may have
        # had part of its held money refunded; that money is gone, not held again).
        moved = p.collected - p.refunded - p.held
        if moved > 0:
            txs.append(transaction(f"{key}:hold", now, "hold",
                                   {Account.RECEIVABLES: moved}, {Account.OVERPAYMENTS: moved},
                                   payment=p.id))
    return Effects(dataclasses.replace(p, state=to, held=p.collected - p.refunded), (t,),
                   tuple(txs))


def expire_payment(p: Payment, *, now: dt.datetime, actor: str = "system") -> Effects:
    """An open payment past its expiry time expires (money collected on it is held)."""
    if require_utc(now) < p.expires_at:
        raise InvalidInput("the payment has not reached its expiry time")
    return _close(p, S.EXPIRED, now, "expired", actor)


def cancel_payment(p: Payment, *, now: dt.datetime, actor: str) -> Effects:
    """Cancel an unpaid payment: the new state and the ledger and audit effects."""
    return _close(p, S.CANCELLED, now, "cancelled", actor)


def refund_payment(p: Payment, amount: int, *, key: str, now: dt.datetime, actor: str
                   ) -> Effects:
    """Grant a refund of ``amount``; never more than was collected net of earlier refunds.

    Held money (overpayment, or money on an expired payment) is refunded first, then fee lines
    from the last to the first."""
    check_amount(amount)
    if amount > p.refundable:
        raise RefundExceedsCollected("the refund exceeds what was collected",
                                     metadata={"refundable": str(p.refundable)})
    if p.state not in PAID_STATES and p.state not in (S.EXPIRED, S.CANCELLED):
        raise RefundExceedsCollected("nothing has been collected on this payment",
                                     metadata={"refundable": "0"})
    from_held = min(amount, p.held)
    rest = amount - from_held
    debits: dict[str, int] = {Account.OVERPAYMENTS: from_held}
    line_refunded = list(p.line_refunded)
    for index in range(len(p.lines) - 1, -1, -1):
        if rest == 0:
            break
        line = p.lines[index]
        take = min(rest, line.amount - line_refunded[index])
        if take:
            account = Account.revenue(line.kind.value, line.collector)
            debits[account] = debits.get(account, 0) + take
            line_refunded[index] += take
            rest -= take
    if rest:
        raise RefundExceedsCollected("the refund exceeds what was collected",
                                     metadata={"refundable": str(p.refundable)})
    tx = transaction(key, now, "refund", debits, {Account.REFUNDS_PAYABLE: amount},
                     payment=p.id, memo="refund granted")
    refunded = p.refunded + amount
    transitions: tuple[Transition, ...] = ()
    state = p.state
    if p.state in PAID_STATES:
        state = S.REFUNDED if refunded >= p.collected else S.PARTIALLY_REFUNDED
        transitions = (_move(p, state, now, "refund granted", actor),)
    new = dataclasses.replace(p, state=state, refunded=refunded, held=p.held - from_held,
                              line_refunded=tuple(line_refunded))
    return Effects(new, transitions, (tx,))
