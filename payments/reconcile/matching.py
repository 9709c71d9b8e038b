"""Matching money on statements to payments: a pure function of the lines, the payments expected
to have been settled, and the reconciliation date.

Passes, each over what the previous ones left:

1. **bank reference** — the line's bank reference or end-to-end id equals a channel transaction id
   we recorded for the payment (the bank notification's id, the gateway's transaction number);
2. **structured reference** — the remittance text holds the payment's ISO 11649 ``RF``
   reference. A valid reference that is not ours is a stranger's transfer; an invalid one (a
   typo) is corrected when exactly one of our references is one substitution or transposition
   away; a line quoting several of our references pays them together (combined);
3. **amount and date** — one unmatched payment of exactly the line's amount confirmed within the
   date window (an ambiguous amount matches nothing).

Outcomes per payment: matched (one-to-one, split over several lines, or combined with others in
one line), amount mismatch, payment without money (only once the settlement delay has passed),
paid without receipt; per line: duplicate (same bank reference twice, or money beyond a payment
already matched in full), money without payment, unexplained debit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from payments.channels.iso11649 import (
    COMPACT_REFERENCE,
    corrections,
    find_references,
    is_valid_reference,
)
from payments.money import local_date
from payments.reconcile.camt053 import Statement, StatementLine, line_identity
from payments.reconcile.csvfiles import ChannelRecord

_COMPACT = COMPACT_REFERENCE

__all__ = [
    "ChannelComparison",
    "ExpectedPayment",
    "MatchMethod",
    "Outcome",
    "ReconciliationItem",
    "ReconciliationResult",
    "check_continuity",
    "compare_channel_list",
    "paused_gc",
    "reconcile",
]


class Outcome(StrEnum):
    """The result of reconciling one statement line or payment."""
    MATCHED = "matched"
    AMOUNT_MISMATCH = "amount_mismatch"
    DUPLICATE = "duplicate"
    MONEY_WITHOUT_PAYMENT = "money_without_payment"
    PAYMENT_WITHOUT_MONEY = "payment_without_money"
    PAID_WITHOUT_RECEIPT = "paid_without_receipt"
    UNEXPLAINED_DEBIT = "unexplained_debit"
    AWAITING_SETTLEMENT = "awaiting_settlement"
    # A credit and the debit that reversed it (same bank reference and amount, on the same
    # statement run): the money came and went; nothing to match, nothing held.
    REVERSED = "reversed"

    @property
    def is_exception(self) -> bool:
        return self not in (Outcome.MATCHED, Outcome.AWAITING_SETTLEMENT, Outcome.REVERSED)


class MatchMethod(StrEnum):
    """How a statement line was matched to payments."""
    BANK_REFERENCE = "bank_reference"
    CREDITOR_REFERENCE = "creditor_reference"
    CORRECTED_REFERENCE = "corrected_reference"
    AMOUNT_AND_DATE = "amount_and_date"
    NONE = ""


class ExpectedPayment(NamedTuple):
    """A payment a channel confirmed, which the bank statement should show."""
    payment_id: str
    reference: str
    amount: int  # money the channel confirmed and the bank should show
    confirmed_at: dt.datetime
    channel_refs: tuple[str, ...] = ()
    has_receipt: bool = True


class ReconciliationItem(NamedTuple):
    """One finding of a reconciliation: its outcome, the amount, the statement lines and payments involved and
    how they were matched."""
    outcome: Outcome
    amount: int
    line_keys: tuple[str, ...] = ()
    payment_ids: tuple[str, ...] = ()
    method: MatchMethod = MatchMethod.NONE
    shape: str = ""  # one_to_one | split | combined
    note: str = ""


@dataclass
class ReconciliationResult:
    """All findings of a reconciliation run."""
    items: list[ReconciliationItem] = field(default_factory=list)

    def by_outcome(self) -> dict[Outcome, list[ReconciliationItem]]:
        out: dict[Outcome, list[ReconciliationItem]] = defaultdict(list)
        for item in self.items:
            out[item.outcome].append(item)
        return dict(out)

    @property
    def exceptions(self) -> list[ReconciliationItem]:
        return [i for i in self.items if i.outcome.is_exception]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of acyclic records are built: its
    generation scans otherwise make the work grow faster than the input."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def reconcile(lines: Sequence[StatementLine], expected: Sequence[ExpectedPayment], *,
              as_of: dt.datetime, settlement_delay: dt.timedelta = dt.timedelta(days=2),
              window_days: int = 3) -> ReconciliationResult:
    """Match bank statement ``lines`` against the ``expected`` payments: by bank reference, creditor reference
    (also corrected for typing errors), then amount and date; everything else is an exception to resolve."""
    with paused_gc():
        return _reconcile(lines, expected, as_of, settlement_delay, window_days)


def _reversals(lines: Sequence[StatementLine]) -> dict[int, int]:
    """Credits reversed by a later debit of the same amount under the same bank reference on
    the same account: credit index -> debit index, and debit index -> -1."""
    debits: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for i, line in enumerate(lines):
        if not line.credit and line.bank_ref:
            debits[(line.account, line.bank_ref, line.amount)].append(i)
    if not debits:
        return {}
    pairs: dict[int, int] = {}
    for i, line in enumerate(lines):
        if line.credit and line.bank_ref:
            waiting = debits.get((line.account, line.bank_ref, line.amount))
            while waiting and lines[waiting[0]].booking_date < line.booking_date:
                waiting.pop(0)
            if waiting:
                pairs[i] = waiting.pop(0)
                pairs[pairs[i]] = -1
    return pairs


def _reconcile(lines: Sequence[StatementLine], expected: Sequence[ExpectedPayment],
               as_of: dt.datetime, settlement_delay: dt.timedelta, window_days: int
               ) -> ReconciliationResult:
    result = ReconciliationResult()
    by_channel_ref: dict[str, int] = {}
    by_reference: dict[str, int] = {}
    for index, p in enumerate(expected):
        for ref in p.channel_refs:
            by_channel_ref[ref] = index
        if p.reference:
            by_reference[p.reference] = index
    assigned: dict[int, list[int]] = defaultdict(list)  # payment -> lines
    line_payments: dict[int, list[int]] = {}  # line -> payments (combined when > 1)
    methods: dict[int, MatchMethod] = {}
    notes: dict[int, str] = {}
    seen_keys: set[tuple[str, str]] = set()
    pending: list[int] = []
    reversed_lines = _reversals(lines)
    for li, line in enumerate(lines):
        if li in reversed_lines:
            debit = reversed_lines[li]
            if debit >= 0:  # reported once, on the credit
                result.items.append(ReconciliationItem(
                    Outcome.REVERSED, line.amount, (line.key, lines[debit].key),
                    note="credited and reversed under the same bank reference"))
            continue
        if not line.credit:
            result.items.append(ReconciliationItem(Outcome.UNEXPLAINED_DEBIT, line.amount,
                                                   (line.key,)))
            continue
        identity = (line.account, line_identity(line.key))
        if identity in seen_keys:
            result.items.append(ReconciliationItem(Outcome.DUPLICATE, line.amount, (line.key,),
                                                   note="the same entry twice on the statement"))
            continue
        seen_keys.add(identity)
        # 1. bank reference
        hit = by_channel_ref.get(line.bank_ref) if line.bank_ref else None
        if hit is None and line.end_to_end:
            hit = by_channel_ref.get(line.end_to_end)
        if hit is not None:
            line_payments[li] = [hit]
            assigned[hit].append(li)
            methods[li] = MatchMethod.BANK_REFERENCE
            continue
        # 2. structured reference
        text = line.remittance.upper()
        found: list[int] = []
        corrected = False
        strangers = 0
        refs: list[str] = []
        if "RF" in text:
            refs = _COMPACT.findall(text)
            for ref in refs:  # fast path: ours, written compactly
                idx = by_reference.get(ref)
                if idx is not None and idx not in found:
                    found.append(idx)
            if not found:
                refs = find_references(text)  # also references printed in groups of four
                for ref in refs:
                    idx = by_reference.get(ref)
                    if idx is not None:
                        if idx not in found:
                            found.append(idx)
                    elif is_valid_reference(ref):
                        strangers += 1
                    else:
                        fixes = list(corrections(ref, by_reference.__contains__))
                        if len(fixes) == 1 and by_reference[fixes[0]] not in found:
                            found.append(by_reference[fixes[0]])
                            corrected = True
        if found:
            line_payments[li] = found
            for idx in found:
                assigned[idx].append(li)
            methods[li] = MatchMethod.CORRECTED_REFERENCE if corrected else \
                MatchMethod.CREDITOR_REFERENCE
            continue
        if strangers:
            notes[li] = "a valid creditor reference that is not ours"
            result.items.append(ReconciliationItem(Outcome.MONEY_WITHOUT_PAYMENT, line.amount,
                                                   (line.key,), note=notes[li]))
            continue
        if refs:
            notes[li] = "a creditor reference with wrong check digits, matching none of ours"
        pending.append(li)
    # 3. amount and date window, over payments nothing has claimed yet
    open_by_amount: dict[int, list[int]] = defaultdict(list)
    for index, p in enumerate(expected):
        if index not in assigned:
            open_by_amount[p.amount].append(index)
    for li in pending:
        line = lines[li]
        candidates = [i for i in open_by_amount.get(line.amount, ())
                      if i not in assigned and abs((line.booking_date - local_date(
                          expected[i].confirmed_at)).days) <= window_days]
        if len(candidates) == 1:
            line_payments[li] = candidates
            assigned[candidates[0]].append(li)
            methods[li] = MatchMethod.AMOUNT_AND_DATE
        else:
            note = notes.get(li) or ("several payments of this amount and date"
                                     if candidates else "no reference and no payment to match")
            result.items.append(ReconciliationItem(Outcome.MONEY_WITHOUT_PAYMENT, line.amount,
                                                   (line.key,), note=note))
    _evaluate(result, lines, expected, assigned, line_payments, methods, as_of,
              settlement_delay)
    for p in expected:  # whatever became of the money, a paid payment needs its receipt
        if not p.has_receipt:
            _receipt_check(result, p)
    return result


def _evaluate(result: ReconciliationResult, lines: Sequence[StatementLine],
              expected: Sequence[ExpectedPayment], assigned: dict[int, list[int]],
              line_payments: dict[int, list[int]], methods: dict[int, MatchMethod],
              as_of: dt.datetime, delay: dt.timedelta) -> None:
    done_combined: set[int] = set()
    items = result.items
    for index, p in enumerate(expected):
        lis = assigned.get(index)
        if lis is not None and len(lis) == 1 and len(line_payments[lis[0]]) == 1:
            line = lines[lis[0]]  # the common case: one line for one payment
            if line.amount == p.amount:
                items.append(ReconciliationItem(Outcome.MATCHED, p.amount, (line.key,),
                                                (p.payment_id,), methods[lis[0]], "one_to_one"))
                continue
        if not lis:
            if p.confirmed_at + delay <= as_of:
                result.items.append(ReconciliationItem(
                    Outcome.PAYMENT_WITHOUT_MONEY, p.amount, payment_ids=(p.payment_id,),
                    note=f"no money {delay.days} days after confirmation"))
            else:
                result.items.append(ReconciliationItem(
                    Outcome.AWAITING_SETTLEMENT, p.amount, payment_ids=(p.payment_id,)))
            continue
        combined = [li for li in lis if len(line_payments[li]) > 1]
        if combined:
            li = combined[0]
            if li in done_combined:
                continue
            done_combined.add(li)
            group = line_payments[li]
            due = sum(expected[i].amount for i in group)
            ok = lines[li].amount == due
            result.items.append(ReconciliationItem(
                Outcome.MATCHED if ok else Outcome.AMOUNT_MISMATCH, lines[li].amount,
                (lines[li].key,), tuple(expected[i].payment_id for i in group), methods[li],
                "combined", "" if ok else f"line {lines[li].amount}, payments {due}"))
            continue
        total = sum(lines[li].amount for li in lis)
        method = methods[lis[0]]
        if total == p.amount:
            shape = "one_to_one" if len(lis) == 1 else "split"
            result.items.append(ReconciliationItem(
                Outcome.MATCHED, total, tuple(lines[li].key for li in lis), (p.payment_id,),
                method, shape))
            continue
        exact = [li for li in lis if lines[li].amount == p.amount]
        if exact:
            first = exact[0]
            result.items.append(ReconciliationItem(
                Outcome.MATCHED, p.amount, (lines[first].key,), (p.payment_id,), methods[first],
                "one_to_one"))
            for li in lis:
                if li != first:
                    result.items.append(ReconciliationItem(
                        Outcome.DUPLICATE, lines[li].amount, (lines[li].key,), (p.payment_id,),
                        methods[li], note="money for a payment already matched in full"))
            continue
        result.items.append(ReconciliationItem(
            Outcome.AMOUNT_MISMATCH, total, tuple(lines[li].key for li in lis),
            (p.payment_id,), method, "split" if len(lis) > 1 else "one_to_one",
            f"received {total}, expected {p.amount}"))


def _receipt_check(result: ReconciliationResult, p: ExpectedPayment) -> None:
    result.items.append(ReconciliationItem(Outcome.PAID_WITHOUT_RECEIPT, p.amount,
                                           payment_ids=(p.payment_id,),
                                           note="money confirmed, no receipt issued"))


@dataclass(frozen=True, slots=True)
class ContinuityProblem:
    account: str
    statement_id: str
    problem: str


def check_continuity(statements: Iterable[Statement]) -> list[ContinuityProblem]:
    """Opening + entries = closing for each statement, and each statement's opening equals the
    closing of the account's previous one (ordered by date)."""
    problems: list[ContinuityProblem] = []
    by_account: dict[str, list[Statement]] = defaultdict(list)
    for s in statements:
        by_account[s.account].append(s)
        if s.opening is None or s.closing is None:
            problems.append(ContinuityProblem(s.account, s.id, "missing opening or closing"))
        elif s.opening + s.net != s.closing:
            problems.append(ContinuityProblem(
                s.account, s.id, f"opening {s.opening} + entries {s.net} != closing {s.closing}"))
    for account, items in by_account.items():
        items.sort(key=lambda s: (s.from_date or dt.date.min, s.id))
        for prev, nxt in zip(items, items[1:], strict=False):
            if prev.closing is not None and nxt.opening is not None and \
                    prev.closing != nxt.opening:
                problems.append(ContinuityProblem(
                    account, nxt.id, f"opening {nxt.opening} != previous closing {prev.closing}"))
            if prev.to_date and nxt.from_date and (nxt.from_date - prev.to_date).days > 1:
                problems.append(ContinuityProblem(account, nxt.id,
                                                  f"days missing after {prev.to_date}"))
    return problems


class ChannelComparison(NamedTuple):
    """One row of comparing a channel's transaction list with what we recorded."""

    outcome: str  # matched | amount_mismatch | missing_here | missing_at_channel
    reference: str
    transaction_id: str
    channel_amount: int
    our_amount: int


def compare_channel_list(records: Iterable[ChannelRecord],
                         ours: Iterable[tuple[str, str, int]], *, day_start: dt.datetime,
                         day_end: dt.datetime) -> list[ChannelComparison]:
    """Compare a gateway's or the platform's list of paid transactions for ``[day_start,
    day_end)`` with our applied channel events ``(reference, transaction id, amount)`` of the
    same period: a transaction the channel lists but we never applied is ``missing_here`` (a
    lost callback the mop-up worker did not catch), one we applied that the channel does not
    list is ``missing_at_channel``."""
    theirs = {r.transaction_id: r for r in records
              if r.status == "paid" and day_start <= r.paid_at < day_end}
    out: list[ChannelComparison] = []
    seen: set[str] = set()
    for reference, txn, amount in ours:
        seen.add(txn)
        record = theirs.get(txn)
        if record is None:
            out.append(ChannelComparison("missing_at_channel", reference, txn, 0, amount))
        elif record.amount != amount or record.reference != reference:
            out.append(ChannelComparison("amount_mismatch", reference, txn, record.amount,
                                         amount))
        else:
            out.append(ChannelComparison("matched", reference, txn, record.amount, amount))
    for txn, record in theirs.items():
        if txn not in seen:
            out.append(ChannelComparison("missing_here", record.reference, txn, record.amount,
                                         0))
    return out
