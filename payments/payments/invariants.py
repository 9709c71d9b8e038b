"""Money invariants checked per payment, from what the database recorded about it.

The trial balance being zero says the ledger is balanced in total; it does not say that each
payment counted the money it was sent. A payment that loses the second of two concurrent
transfers keeps a balanced ledger. These checks compare, for each payment, three independent
records of its money: the transfers the channels confirmed (one row per channel transaction),
the ledger transactions posted for the payment, and the running totals kept on the payment:

* **received = applied + held**: the money received for the payment (every channel transfer
  recorded for it, and statement money a finance officer applied to it) equals the money applied
  to it (``collected``: to its fees, or to ``held`` for refund when beyond them) plus the money
  held as an exception (transfers kept on SUSPENSE until an officer decides);
* **each transfer is accounted exactly once**: a transfer is either credited to the payment or
  held, never both and never neither, and every credit in the ledger has a transfer behind it;
* **collected never exceeds received**;
* **refunds never exceed collected**, and the refunds granted, the ledger's refund transactions
  and the payment's ``refunded`` agree;
* **receivables never go negative** for the payment, nor does the money held for it
  (``OVERPAYMENTS``), and the ledger agrees with ``collected`` and ``held``.

:func:`check_payment` is pure; the server gathers the facts (``server.payments.checks``) for
``vnegov payments check`` and for the tests, which use the same checker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from payments.ledger.core import Account

__all__ = [
    "EntryFact",
    "PaymentFacts",
    "TransferFact",
    "Violation",
    "check_payment",
    "check_payments",
]


@dataclass(frozen=True, slots=True)
class TransferFact:
    """A channel transfer recorded for the payment: ``outcome`` is ``applied`` (credited,
    directly or by an officer's resolution of held money) or ``held`` (kept as an exception)."""

    channel: str
    transaction_id: str
    amount: int
    outcome: str


@dataclass(frozen=True, slots=True)
class EntryFact:
    """A ledger transaction posted for the payment: its key, kind and postings
    ``(account, debit, credit)``."""

    key: str
    kind: str
    postings: tuple[tuple[str, int, int], ...]

    @property
    def amount(self) -> int:
        return sum(d for _, d, _ in self.postings)

    def balance(self, account: str) -> int:
        """Debits minus credits on ``account`` in this transaction."""
        return sum(d - c for a, d, c in self.postings if a == account)


@dataclass(frozen=True)
class PaymentFacts:
    """Everything the database says about one payment's money.

    ``resolutions`` maps the key of each officer's ``apply_to_payment`` resolution
    (``resolve:<exception id>``) to the channel transaction it applied (``"channel:tx"``) or
    ``""`` for statement money. ``ledger_keys`` are the keys of every ledger transaction that
    mentions one of the payment's transfers, whichever payment it was posted for."""

    payment_id: str
    state: str
    amount_due: int
    collected: int
    refunded: int
    held: int
    transfers: tuple[TransferFact, ...] = ()
    entries: tuple[EntryFact, ...] = ()
    refunds_granted: tuple[int, ...] = ()
    resolutions: dict[str, str] = field(default_factory=dict)
    ledger_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Violation:
    payment_id: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"payments/{self.payment_id}: {self.rule}: {self.detail}"


def check_payment(f: PaymentFacts) -> list[Violation]:
    out: list[Violation] = []

    def bad(rule: str, detail: str) -> None:
        out.append(Violation(f.payment_id, rule, detail))

    collections = [e for e in f.entries if e.kind == "collection"]
    by_key = {e.key: e for e in collections}
    channel_resolved = {v for v in f.resolutions.values() if v}

    # Each transfer accounted exactly once.
    direct = 0
    held_now = 0
    for t in f.transfers:
        name = f"{t.channel}:{t.transaction_id}"
        credited = name in by_key
        held = f"{name}:held" in f.ledger_keys
        via_resolution = name in channel_resolved
        if t.outcome == "held":
            if credited or not held:
                bad("transfer accounted once", f"held transfer {name} of {t.amount} đồng is "
                    + ("also credited" if credited else "not on SUSPENSE"))
            held_now += t.amount
        elif t.outcome == "applied":
            if credited and held:
                bad("transfer accounted once", f"transfer {name} both credited and held")
            elif credited:
                if by_key[name].amount != t.amount:
                    bad("transfer accounted once", f"transfer {name} of {t.amount} đồng "
                        f"credited as {by_key[name].amount}")
                direct += t.amount
            elif not (held and via_resolution):
                bad("transfer accounted once", f"transfer {name} of {t.amount} đồng recorded "
                    "as applied but neither credited nor applied by a resolution")
    # Every credit in the ledger has a transfer (or an officer's resolution) behind it.
    transfer_names = {f"{t.channel}:{t.transaction_id}" for t in f.transfers
                      if t.outcome == "applied"}
    resolved_in = 0
    for e in collections:
        if e.key in transfer_names:
            continue
        if e.key in f.resolutions:
            resolved_in += e.amount
            continue
        bad("transfer accounted once", f"ledger credit {e.key} of {e.amount} đồng has no "
            "transfer or resolution behind it")

    received = direct + resolved_in + held_now
    applied = sum(e.amount for e in collections)
    if received != applied + held_now:
        bad("received = applied + held", f"received {received} đồng, applied {applied} + "
            f"held {held_now}")
    if f.collected != applied:
        bad("received = applied + held", f"the payment counts {f.collected} đồng collected, "
            f"its transfers and resolutions credited {applied}")
    if f.collected > received - held_now:
        bad("collected <= received", f"collected {f.collected} đồng of {received - held_now} "
            "received and not held")

    refunds = [e for e in f.entries if e.kind == "refund"]
    refunded_ledger = -sum(e.balance(Account.REFUNDS_PAYABLE) for e in refunds)
    if not 0 <= f.refunded <= f.collected:
        bad("refunds <= collected", f"refunded {f.refunded} đồng of {f.collected} collected")
    if not f.refunded == refunded_ledger == sum(f.refunds_granted):
        bad("refunds <= collected", f"refunded {f.refunded} đồng on the payment, "
            f"{refunded_ledger} in the ledger, {sum(f.refunds_granted)} granted")

    receivable = sum(e.balance(Account.RECEIVABLES) for e in f.entries)
    overpaid = -sum(e.balance(Account.OVERPAYMENTS) for e in f.entries)
    if receivable < 0:
        bad("receivables never negative", f"receivable {receivable} đồng")
    if f.held < 0 or overpaid < 0:
        bad("receivables never negative", f"held {f.held} đồng, OVERPAYMENTS {overpaid}")
    if overpaid != f.held:
        bad("received = applied + held", f"the payment holds {f.held} đồng, OVERPAYMENTS "
            f"{overpaid}")
    return out


def check_payments(facts: Iterable[PaymentFacts]) -> list[Violation]:
    found: list[Violation] = []
    for f in facts:
        found.extend(check_payment(f))
    return found


def payments_named(violations: Sequence[Violation]) -> list[str]:
    """The payments that break a rule, each once, in order."""
    return list(dict.fromkeys(v.payment_id for v in violations))
