"""A double-entry ledger in integer đồng (after TigerBeetle's invariants).

Every transaction has at least two postings, every posting a positive amount on one side, and
each transaction's debits equal its credits, so the trial balance (debits minus credits over all
accounts) is zero by construction. The ledger is append-only: a mistake is corrected by posting
the reversing transaction, never by editing one.

Chart of accounts (names are ``KIND`` or ``KIND:qualifier``):

=====================  ======================================================================
``RECEIVABLES``        fees assessed on open payments, not yet collected (debit balance)
``REVENUE:<kind>:<c>`` fee revenue per type (``phi`` / ``le_phi``) and collecting body ``c``
``CLEARING:<ch>``      money confirmed by a channel, not yet seen on the bank statement
``BANK:<account>``     the collection account, as the bank statement shows it
``OVERPAYMENTS``       money received beyond what was due (or on expired payments), held
``REFUNDS_PAYABLE``    refunds granted, not yet paid out
``SUSPENSE``           money on the statement that no payment explains yet
``ADJUSTMENTS``        differences written off by a finance officer
=====================  ======================================================================
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from payments.errors import UnbalancedTransaction

__all__ = [
    "ACCOUNT_KINDS",
    "Account",
    "LedgerTransaction",
    "Posting",
    "TrialBalance",
    "reverse",
    "transaction",
    "trial_balance",
]


class Account:
    """Builders for account names."""

    RECEIVABLES = "RECEIVABLES"
    OVERPAYMENTS = "OVERPAYMENTS"
    REFUNDS_PAYABLE = "REFUNDS_PAYABLE"
    SUSPENSE = "SUSPENSE"
    ADJUSTMENTS = "ADJUSTMENTS"

    @staticmethod
    def revenue(kind: str, collector: str) -> str:
        return f"REVENUE:{kind}:{collector or '-'}"

    @staticmethod
    def clearing(channel: str) -> str:
        return f"CLEARING:{channel}"

    @staticmethod
    def bank(account: str) -> str:
        return f"BANK:{account}"


ACCOUNT_KINDS = frozenset({"RECEIVABLES", "OVERPAYMENTS", "REFUNDS_PAYABLE", "SUSPENSE",
                           "ADJUSTMENTS", "REVENUE", "CLEARING", "BANK"})


@dataclass(frozen=True, slots=True)
class Posting:
    """One side of a ledger entry: an amount debited or credited to an account (in đồng)."""
    account: str
    debit: int = 0
    credit: int = 0


@dataclass(frozen=True, slots=True)
class LedgerTransaction:
    """A balanced set of postings. ``key`` makes posting idempotent (one transaction per key)."""

    key: str
    at: dt.datetime
    kind: str
    postings: tuple[Posting, ...]
    payment: str = ""
    memo: str = ""
    reverses: str = ""

    @property
    def amount(self) -> int:
        return sum(p.debit for p in self.postings)


def _validate(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise UnbalancedTransaction("a transaction needs at least two postings")
    for p in postings:
        for side in (p.debit, p.credit):
            if isinstance(side, bool) or not isinstance(side, int) or side < 0:
                raise UnbalancedTransaction("posting amounts are non-negative integers")
        if (p.debit == 0) == (p.credit == 0):
            raise UnbalancedTransaction("each posting is a debit or a credit, not both or neither")
        if p.account.split(":", 1)[0] not in ACCOUNT_KINDS:
            raise UnbalancedTransaction(f"unknown account {p.account!r}")
    if sum(p.debit for p in postings) != sum(p.credit for p in postings):
        raise UnbalancedTransaction("debits and credits differ")


def transaction(key: str, at: dt.datetime, kind: str, debits: Mapping[str, int],
                credits: Mapping[str, int], *, payment: str = "", memo: str = ""
                ) -> LedgerTransaction:
    """A validated transaction from debit and credit amounts per account (zero amounts are
    dropped, so callers can pass computed splits)."""
    postings = tuple([Posting(a, debit=v) for a, v in debits.items() if v] +
                     [Posting(a, credit=v) for a, v in credits.items() if v])
    _validate(postings)
    return LedgerTransaction(key, at, kind, postings, payment, memo)


def reverse(tx: LedgerTransaction, *, key: str, at: dt.datetime, memo: str = ""
            ) -> LedgerTransaction:
    """The transaction that undoes ``tx`` (debits and credits swapped)."""
    postings = tuple(Posting(p.account, debit=p.credit, credit=p.debit) for p in tx.postings)
    return LedgerTransaction(key, at, "reversal", postings, tx.payment,
                             memo or f"reverses {tx.key}", reverses=tx.key)


@dataclass(frozen=True)
class TrialBalance:
    """Balances (debit minus credit) per account, and the totals that must agree."""

    balances: Mapping[str, int] = field(default_factory=dict)
    total_debits: int = 0
    total_credits: int = 0

    @property
    def difference(self) -> int:
        return self.total_debits - self.total_credits

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for account, value in self.balances.items():
            out[account.split(":", 1)[0]] += value
        return dict(out)


def trial_balance(postings: Iterable[Posting]) -> TrialBalance:
    """Each account's balance (debits minus credits) and the totals of ``postings``; the two totals agree when
    the ledger balances."""
    balances: dict[str, int] = defaultdict(int)
    debits = credits = 0
    for p in postings:
        balances[p.account] += p.debit - p.credit
        debits += p.debit
        credits += p.credit
    return TrialBalance({a: v for a, v in sorted(balances.items())}, debits, credits)
