"""The per-payment money invariants (``payments.payments.invariants``) proved from the database:
``vnegov payments check`` and the tests gather the facts here and run the same checker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from sqlalchemy import select

from payments.payments.invariants import (
    EntryFact,
    PaymentFacts,
    TransferFact,
    Violation,
    check_payments,
)
from server.storage.db import Database
from server.storage.payments import (
    ChannelEventRow,
    ExceptionRow,
    LedgerPostingRow,
    LedgerTransactionRow,
    PaymentRow,
    RefundRow,
)

__all__ = ["check_database", "payment_facts"]

_BATCH = 500


def payment_facts(db: Database, payment_ids: Sequence[str] | None = None,
                  ) -> Iterator[PaymentFacts]:
    """The facts of the given payments (all of them when None), read in one snapshot per batch
    of payments."""
    if payment_ids is None:
        with db.read() as s:
            payment_ids = list(s.execute(select(PaymentRow.id).order_by(PaymentRow.id))
                               .scalars())
        # Officers' resolutions applying money: "resolve:<id>" -> the held transfer or "".
    with db.read() as s:
        resolutions: dict[str, tuple[str, str]] = {}
        for exc in s.execute(select(ExceptionRow).where(
                ExceptionRow.state == "resolved",
                ExceptionRow.resolution == "apply_to_payment")).scalars():
            transfer = (f"{exc.source.split(':', 1)[1]}:{exc.line_keys}"
                        if exc.source.startswith("channel:") else "")
            resolutions[f"resolve:{exc.id}"] = (transfer, exc.payment_ids)
    for start in range(0, len(payment_ids), _BATCH):
        ids = list(payment_ids[start:start + _BATCH])
        with db.read() as s:
            rows = {r.id: r for r in s.execute(select(PaymentRow).where(
                PaymentRow.id.in_(ids))).scalars()}
            transfers: dict[str, list[TransferFact]] = defaultdict(list)
            for ev in s.execute(select(ChannelEventRow).where(
                    ChannelEventRow.payment_id.in_(ids),
                    ChannelEventRow.outcome.in_(("applied", "held")))).scalars():
                transfers[ev.payment_id or ""].append(TransferFact(
                    ev.channel, ev.transaction_id, int(ev.amount), ev.outcome))
            names = [f"{t.channel}:{t.transaction_id}" for ts in transfers.values() for t in ts]
            keys: set[str] = set()
            for i in range(0, len(names), _BATCH):
                chunk = names[i:i + _BATCH]
                keys |= set(s.execute(select(LedgerTransactionRow.key).where(
                    LedgerTransactionRow.key.in_(chunk + [f"{n}:held" for n in chunk])))
                    .scalars())
            postings: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
            txs = s.execute(select(LedgerTransactionRow).where(
                LedgerTransactionRow.payment_id.in_(ids))).scalars().all()
            tx_ids = [t.id for t in txs]
            for i in range(0, len(tx_ids), _BATCH):
                for tid, account, debit, credit in s.execute(select(
                        LedgerPostingRow.transaction_id, LedgerPostingRow.account,
                        LedgerPostingRow.debit, LedgerPostingRow.credit).where(
                        LedgerPostingRow.transaction_id.in_(tx_ids[i:i + _BATCH]))):
                    postings[tid].append((account, int(debit), int(credit)))
            entries: dict[str, list[EntryFact]] = defaultdict(list)
            for t in txs:
                entries[t.payment_id].append(EntryFact(t.key, t.kind, tuple(postings[t.id])))
            refunds: dict[str, list[int]] = defaultdict(list)
            for pid, amount in s.execute(select(RefundRow.payment_id, RefundRow.amount).where(
                    RefundRow.payment_id.in_(ids))):
                refunds[pid].append(int(amount))
        for pid in ids:
            row = rows.get(pid)
            if row is None:
                continue
            own = {e.key for e in entries[pid]}
            yield PaymentFacts(
                pid, row.state, int(row.amount_due), int(row.collected), int(row.refunded),
                int(row.held), tuple(transfers[pid]), tuple(entries[pid]), tuple(refunds[pid]),
                {k: transfer for k, (transfer, _) in resolutions.items() if k in own},
                frozenset(keys))


def check_database(db: Database, payment_ids: Sequence[str] | None = None) -> list[Violation]:
    """Every broken invariant of the given payments (all when None)."""
    return check_payments(payment_facts(db, payment_ids))
