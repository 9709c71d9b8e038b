"""Statements, reconciliation runs and the exceptions queue on the database.

Statement lines are unique per (account, bank reference): importing a statement twice adds
nothing. A run considers only lines not yet reconciled and money not yet settled, and marks what
it decides, so nothing is matched twice. Matched money moves from CLEARING to BANK in the
ledger; unexplained money goes from BANK to SUSPENSE until a finance officer resolves it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

import payments.errors as pe
from payments.ledger.core import Account, transaction
from payments.money import local_day_bounds
from payments.payments.model import Effects, Unsettled, apply_credit, apply_statement_money
from payments.reconcile.camt053 import Statement, StatementLine, parse_camt053
from payments.reconcile.csvfiles import parse_bank_csv, parse_channel_list
from payments.reconcile.matching import (
    ExpectedPayment,
    MatchMethod,
    Outcome,
    ReconciliationItem,
    check_continuity,
    compare_channel_list,
    reconcile,
)
from server.payments.common import (
    audit,
    enqueue,
    lock_payment,
    new_id,
    payment_from_row,
    payment_values,
    post_ledger,
    record_transitions,
)
from server.storage.db import Database
from server.storage.locking import for_update
from server.storage.payments import (
    ChannelEventRow,
    CollectionAccountRow,
    ExceptionRow,
    OperationRow,
    PaymentRow,
    ReceiptRow,
    ReconItemRow,
    StatementLineRow,
    StatementRow,
)

__all__ = ["RESOLUTIONS", "ReconStore"]

RESOLUTIONS = ("apply_to_payment", "refund_to_sender", "refund_paid_out", "write_off",
               "issue_receipt", "dismiss")
Progress = Callable[[int, int], None]
# Records a run's checkpoint (and progress done/total) in the transaction of the step it follows.
SaveStep = Callable[[Session, dict[str, Any], int, int], None]
RECONCILE_BATCH = 2000


class ReconStore:
    def __init__(self, db: Database, *, settlement_delay: dt.timedelta,
                 window_days: int = 3) -> None:
        self.db = db
        self.settlement_delay = settlement_delay
        self.window_days = window_days

    # ------------------------------------------------------------ import
    def agency_accounts(self, agency: str) -> set[str]:
        """The collection account numbers of ``agency``."""
        with self.db.read() as s:
            return set(s.execute(select(CollectionAccountRow.account_number).where(
                CollectionAccountRow.agency_code == agency)).scalars())

    def _account_agencies(self, s: Session) -> dict[str, str]:
        return {n: a for a, n in s.execute(select(CollectionAccountRow.agency_code,
                                                  CollectionAccountRow.account_number))}

    def import_statement(self, data: bytes, *, fmt: str, account: str = "", actor: str,
                         request_id: str, now: dt.datetime, agency: str | None = None
                         ) -> dict[str, int]:
        """Import bank statements; with ``agency``, only statements of that agency's collection
        accounts (anything else is refused before anything is stored)."""
        if fmt == "camt053":
            statements = parse_camt053(data)
        elif fmt == "csv":
            if not account:
                raise pe.InvalidInput("a CSV statement needs the account it belongs to",
                                      metadata={"field": "account"})
            lines = parse_bank_csv(data, account=account)
            days = [line.booking_date for line in lines]
            statements = [Statement(f"csv-{hashlib.sha256(data).hexdigest()[:16]}", account,
                                    from_date=min(days) if days else None,
                                    to_date=max(days) if days else None, lines=lines)]
        else:
            raise pe.InvalidInput("format must be camt053 or csv", metadata={"field": "format"})
        if agency is not None:
            mine = self.agency_accounts(agency)
            if any(st.account not in mine for st in statements):
                raise pe.NotPermitted("the statement is not for one of the caller's collection "
                                      "accounts", reason="OUT_OF_JURISDICTION")
        digest = hashlib.sha256(data).hexdigest()
        totals = {"statements": 0, "lines": 0, "new_lines": 0, "continuity_problems": 0}
        with self.db.write() as s:
            owners = self._account_agencies(s)
            for st in statements:
                keys = {line.key for line in st.lines}
                existing: set[str] = set()
                key_list = list(keys)
                for i in range(0, len(key_list), 500):
                    existing |= set(s.execute(select(StatementLineRow.key).where(
                        StatementLineRow.account == st.account,
                        StatementLineRow.key.in_(key_list[i:i + 500]))).scalars())
                fresh = [line for line in st.lines if line.key not in existing]
                sid = s.execute(insert(StatementRow).values(
                    account=st.account, statement_id=st.id[:80], source_sha256=digest,
                    format=fmt, from_date=st.from_date, to_date=st.to_date, opening=st.opening,
                    closing=st.closing, line_count=len(st.lines), new_lines=len(fresh),
                    imported_at=now).returning(StatementRow.id)).scalar_one()
                if fresh:
                    s.execute(insert(StatementLineRow), [_line_values(sid, line)
                                                          for line in fresh])
                problems = self._continuity(s, st) if st.opening is not None else []
                for problem in problems:
                    self._exception(s, "statement", "statement_discontinuity", st.account, 0,
                                    [], [], problem, now, agency=owners.get(st.account, ""))
                totals["statements"] += 1
                totals["lines"] += len(st.lines)
                totals["new_lines"] += len(fresh)
                totals["continuity_problems"] += len(problems)
            audit(s, at=now, request_id=request_id, actor=actor, action="statement.import",
                  details={"sha256": digest, **totals})
        return totals

    def _continuity(self, s: Session, st: Statement) -> list[str]:
        """The statement's own balance, and the link to the account's previous statement (its
        closing stands in for the whole earlier chain, which was checked when it came in)."""
        previous = s.execute(select(StatementRow).where(
            StatementRow.account == st.account, StatementRow.to_date < st.from_date,
            StatementRow.closing.is_not(None)).order_by(StatementRow.to_date.desc()).limit(1)
        ).scalar_one_or_none()
        chain = [st]
        if previous is not None:
            # A stand-in for the previous statement: no lines, opening = closing (balanced).
            chain.insert(0, Statement(previous.statement_id, previous.account,
                                      from_date=previous.from_date, to_date=previous.to_date,
                                      opening=previous.closing, closing=previous.closing))
        return [p.problem for p in check_continuity(chain) if p.statement_id == st.id]

    # ------------------------------------------------------------ run
    def reconcile(self, *, as_of: dt.datetime, actor: str, run_id: str,
                  progress: Progress | None = None, agency: str | None = None,
                  resume: dict[str, Any] | None = None,
                  save: SaveStep | None = None) -> dict[str, Any]:
        """Match unreconciled statement lines against confirmed money and apply the outcome;
        with ``agency``, only that agency's collection accounts and payments.

        A run has two phases: the plan (what matches what, decided on one snapshot) and its
        application in batches. With ``save`` (a durable job), the plan is saved as the first
        checkpoint and each batch saves how far the run has got in the batch's own transaction,
        so a run resumed from ``resume`` (the last checkpoint) by another process applies each item
        exactly once and ends with the same result as an uninterrupted run."""
        if (resume or {}).get("audited"):  # stopped after its last step: nothing left to do
            return dict(resume["summary"])  # type: ignore[index]
        plan = (resume or {}).get("plan")
        applied = int((resume or {}).get("applied", 0))
        if plan is None:
            plan = self._plan(as_of, agency)
            applied = 0
            if save is not None:
                with self.db.write() as s:
                    save(s, {"plan": plan, "applied": 0}, 0, len(plan["items"]))
        items = [ReconciliationItem(Outcome(o), a, tuple(lk), tuple(pids), MatchMethod(m), sh, n)
                 for o, a, lk, pids, m, sh, n in plan["items"]]
        line_ids = {(acc, key): lid for acc, key, lid in plan["line_ids"]}
        accounts: dict[str, str] = plan["accounts"]
        channel_of: dict[str, str] = plan["channel_of"]
        due: dict[str, int] = plan["due"]
        agency_of: dict[str, str] = plan["agency_of"]
        if progress:
            progress(applied, len(items))
        for start in range(applied, len(items), RECONCILE_BATCH):
            end = min(start + RECONCILE_BATCH, len(items))
            with self.db.write() as s:
                if save is not None:
                    save(s, {"plan": plan, "applied": end}, end, len(items))
                for item in items[start:end]:
                    self._apply(s, item, run_id, as_of, line_ids, accounts, channel_of, due,
                                agency_of)
            if progress:
                progress(end, len(items))
        counts: dict[str, int] = defaultdict(int)
        amounts: dict[str, int] = defaultdict(int)
        for item in items:
            counts[item.outcome.value] += 1
            amounts[item.outcome.value] += item.amount
        summary = {"run": run_id, "lines": plan["lines"], "payments": plan["payments"],
                   "counts": dict(counts), "amounts": dict(amounts)}
        if not (resume or {}).get("audited"):
            with self.db.write() as s:
                if save is not None:
                    save(s, {"applied": len(items), "audited": True, "summary": summary},
                         len(items), len(items))
                audit(s, at=as_of, request_id=run_id, actor=actor, action="reconcile.run",
                      details={"lines": plan["lines"], "payments": plan["payments"],
                               "exceptions": sum(1 for i in items if i.outcome.is_exception)})
        return summary

    def _plan(self, as_of: dt.datetime, agency: str | None = None) -> dict[str, Any]:
        """What this run will do, decided on one snapshot, as JSON-able data."""
        with self.db.read() as s:
            owners = self._account_agencies(s)
            lines_stmt = select(StatementLineRow).where(StatementLineRow.reconciled.is_(False))
            if agency is not None:
                lines_stmt = lines_stmt.where(StatementLineRow.account.in_(
                    [n for n, a in owners.items() if a == agency]))
            line_rows = s.execute(lines_stmt.order_by(StatementLineRow.id)).scalars().all()
            # Money each payment's channels confirmed, applied or held (the bank shows both),
            # not yet seen on a statement: what the statements should show.
            confirmed = select(ChannelEventRow.payment_id.label("pid"),
                               func.sum(ChannelEventRow.amount).label("total")).where(
                ChannelEventRow.outcome.in_(("applied", "held"))).group_by(
                ChannelEventRow.payment_id).subquery()
            pay_stmt = select(PaymentRow, confirmed.c.total).join(
                confirmed, confirmed.c.pid == PaymentRow.id).where(
                confirmed.c.total > PaymentRow.settled)
            if agency is not None:
                pay_stmt = pay_stmt.where(PaymentRow.agency_code == agency)
            found = s.execute(pay_stmt.order_by(
                PaymentRow.created_at, PaymentRow.id)).all()  # the same input, the same run
            pay_rows = [row for row, _ in found]
            due = {row.id: int(total) - row.settled for row, total in found}
            events: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
            ids = [p.id for p in pay_rows]
            for i in range(0, len(ids), 500):
                for pid, ch, tx, amount in s.execute(select(
                        ChannelEventRow.payment_id, ChannelEventRow.channel,
                        ChannelEventRow.transaction_id, ChannelEventRow.amount).where(
                        ChannelEventRow.payment_id.in_(ids[i:i + 500]),
                        ChannelEventRow.outcome.in_(("applied", "held")))):
                    events[pid or ""].append((ch, tx, amount))
                with_receipts = set(s.execute(select(ReceiptRow.payment_id).where(
                    ReceiptRow.payment_id.in_(ids[i:i + 500]))).scalars())
                events.setdefault("__receipts__", []).extend((p, "", 0) for p in with_receipts)
        receipts = {p for p, _, _ in events.pop("__receipts__", [])}
        lines = [StatementLine(r.account, r.key, r.amount, r.credit, r.booking_date,
                               r.value_date, r.bank_ref, r.end_to_end, r.remittance,
                               r.counterparty, r.counter_account) for r in line_rows]
        expected = [ExpectedPayment(p.id, p.reference, due[p.id],
                                    p.paid_at or p.updated_at,
                                    tuple(tx for _, tx, _ in events.get(p.id, [])),
                                    p.id in receipts or p.paid_at is None) for p in pay_rows]
        result = reconcile(lines, expected, as_of=as_of, settlement_delay=self.settlement_delay,
                           window_days=self.window_days)
        return {
            "items": [[i.outcome.value, i.amount, list(i.line_keys), list(i.payment_ids),
                       i.method.value, i.shape, i.note] for i in result.items],
            "line_ids": [[r.account, r.key, r.id] for r in line_rows],
            "accounts": {line.key: line.account for line in lines},
            "channel_of": {p.id: p.channel for p in pay_rows},
            "agency_of": {**{p.id: p.agency_code for p in pay_rows},
                          **{f"account:{n}": a for n, a in owners.items()}},
            "due": due, "lines": len(lines), "payments": len(expected),
        }

    def _apply(self, s: Session, item: ReconciliationItem, run_id: str, now: dt.datetime,
               line_ids: dict[tuple[str, str], int], accounts: dict[str, str],
               channel_of: dict[str, str], due: dict[str, int],
               agency_of: dict[str, str]) -> None:
        s.execute(insert(ReconItemRow).values(
            run_id=run_id, outcome=item.outcome.value, amount=item.amount,
            line_keys=" ".join(item.line_keys), payment_ids=" ".join(item.payment_ids),
            method=item.method.value, shape=item.shape, note=item.note[:300]))
        account = accounts.get(item.line_keys[0], "") if item.line_keys else ""
        ids = [line_ids[(account, k)] for k in item.line_keys if (account, k) in line_ids]
        if item.outcome is Outcome.AWAITING_SETTLEMENT:
            return
        if ids:
            s.execute(update(StatementLineRow).where(StatementLineRow.id.in_(ids))
                      .values(reconciled=True))
        if item.outcome is Outcome.REVERSED:
            return  # the bank shows the money in and out: BANK nets to nothing
        key = f"recon:{run_id}:{':'.join(item.line_keys or item.payment_ids)}"[:120]
        if item.outcome is Outcome.MATCHED:
            debits = {Account.bank(account): item.amount}
            credits: dict[str, int] = defaultdict(int)
            for pid in item.payment_ids:
                row = s.get(PaymentRow, pid)
                if row is None:
                    continue
                share = due.get(pid, 0) if len(item.payment_ids) > 1 else item.amount
                credits[Account.clearing(channel_of.get(pid, row.channel))] += share
                s.execute(update(PaymentRow).where(PaymentRow.id == pid).values(
                    settled=PaymentRow.settled + share))
                if share >= due.get(pid, 0):
                    # The money a run found missing has now been shown: that exception is
                    # answered (writing it off would settle CLEARING a second time).
                    s.execute(update(ExceptionRow).where(
                        ExceptionRow.outcome == Outcome.PAYMENT_WITHOUT_MONEY.value,
                        ExceptionRow.state == "open", ExceptionRow.payment_ids == pid).values(
                        state="resolved", resolution="dismiss",
                        resolved_by=f"reconciliation:{run_id}"[:200], resolved_at=now))
            rest = item.amount - sum(credits.values())
            if rest:  # cannot happen for a match; never let money vanish from the ledger
                credits[Account.SUSPENSE] += rest
            post_ledger(s, [transaction(key, now, "settlement", debits, dict(credits),
                                        memo="matched on statement")])
            return
        if item.outcome in (Outcome.PAID_WITHOUT_RECEIPT, Outcome.PAYMENT_WITHOUT_MONEY):
            open_same = s.execute(select(ExceptionRow.id).where(
                ExceptionRow.outcome == item.outcome.value, ExceptionRow.state == "open",
                ExceptionRow.payment_ids == " ".join(item.payment_ids))).first()
            if open_same is None:
                self._exception(s, run_id, item.outcome.value, "", item.amount, [],
                                list(item.payment_ids), item.note, now,
                                agency=_item_agency(item, "", agency_of))
            return
        # Money on the statement that nothing explains (yet): BANK <- SUSPENSE.
        if item.outcome is Outcome.UNEXPLAINED_DEBIT:
            post_ledger(s, [transaction(key, now, "unexplained_debit",
                                        {Account.SUSPENSE: item.amount},
                                        {Account.bank(account): item.amount})])
        else:
            post_ledger(s, [transaction(key, now, "suspense", {Account.bank(account): item.amount},
                                        {Account.SUSPENSE: item.amount})])
        self._exception(s, run_id, item.outcome.value, account, item.amount,
                        list(item.line_keys), list(item.payment_ids), item.note, now,
                        agency=_item_agency(item, account, agency_of))

    def _exception(self, s: Session, source: str, outcome: str, account: str, amount: int,
                   line_keys: list[str], payment_ids: list[str], note: str,
                   now: dt.datetime, *, agency: str) -> None:
        s.execute(insert(ExceptionRow).values(
            source=source, outcome=outcome, account=account, amount=amount, agency_code=agency,
            line_keys=" ".join(line_keys), payment_ids=" ".join(payment_ids), note=note[:300],
            state="open", resolution="", resolved_by="", created_at=now))

    def compare_channel_list(self, data: bytes, *, channel: str, first_day: dt.date,
                             last_day: dt.date, actor: str, request_id: str,
                             now: dt.datetime, agency: str | None = None) -> dict[str, int]:
        """Compare a channel's transaction list (CSV) for Vietnamese days ``first_day`` ..
        ``last_day`` with the channel events we applied; differences become exceptions."""
        if channel not in ("platform", "gateway", "vietqr"):
            raise pe.InvalidInput("unknown channel", metadata={"field": "channel"})
        records = parse_channel_list(data)
        start, end = local_day_bounds(first_day, last_day)
        with self.db.read() as s:
            query = select(
                ChannelEventRow.reference, ChannelEventRow.transaction_id,
                ChannelEventRow.amount).where(
                ChannelEventRow.channel == channel,
                # applied, or received first through a statement line an officer applied
                ChannelEventRow.outcome.in_(("applied", "statement_first")),
                ChannelEventRow.at >= start, ChannelEventRow.at < end)
            if agency is not None:
                # Only the caller's payments; another agency's lines are not compared (nor
                # reported: they are that agency's business).
                query = query.join(PaymentRow, PaymentRow.id == ChannelEventRow.payment_id
                                   ).where(PaymentRow.agency_code == agency)
                others = set(s.execute(select(PaymentRow.reference).where(
                    PaymentRow.reference.in_([r.reference for r in records]),
                    PaymentRow.agency_code != agency)).scalars())
                records = [r for r in records if r.reference not in others]
            ours = [(r, t, a) for r, t, a in s.execute(query)]
        rows = compare_channel_list(records, ours, day_start=start, day_end=end)
        counts: dict[str, int] = defaultdict(int)
        with self.db.write() as s:
            for row in rows:
                counts[row.outcome] += 1
                if row.outcome != "matched":
                    self._exception(s, f"channel-list:{channel}", f"channel_{row.outcome}", "",
                                    row.channel_amount or row.our_amount, [row.transaction_id],
                                    [], f"reference {row.reference}: channel "
                                    f"{row.channel_amount}, ours {row.our_amount}", now,
                                    agency=agency or "")
            audit(s, at=now, request_id=request_id, actor=actor, action="channel_list.compare",
                  details={"channel": channel, **counts})
        return dict(counts)

    # ------------------------------------------------------------ exceptions queue
    def exceptions(self, *, state: str = "open", after: int = 0, size: int = 100,
                   agency: str | None = None) -> list[ExceptionRow]:
        with self.db.read() as s:
            stmt = select(ExceptionRow).where(ExceptionRow.id > after)
            if agency is not None:
                stmt = stmt.where(ExceptionRow.agency_code == agency)
            if state:
                stmt = stmt.where(ExceptionRow.state == state)
            return list(s.execute(stmt.order_by(ExceptionRow.id).limit(size + 1)).scalars())

    def resolve(self, exception_id: int, *, action: str, payment_id: str = "", actor: str,
                request_id: str, now: dt.datetime, agency: str | None = None) -> ExceptionRow:
        """Resolve an exception; money-moving actions post their ledger entries. With
        ``agency``, only that agency's exceptions, applied only to its payments (another
        agency's look absent)."""
        if action not in RESOLUTIONS:
            raise pe.InvalidInput(f"action must be one of {', '.join(RESOLUTIONS)}",
                                  metadata={"field": "action"})
        with self.db.write() as s:
            exc = for_update(s, ExceptionRow, exception_id)
            if exc is None or (agency is not None and exc.agency_code != agency):
                raise pe.NotFound("no such exception")
            if exc.state != "open":
                raise pe.FailedPrecondition("the exception is already resolved",
                                            reason="EXCEPTION_RESOLVED")
            key = f"resolve:{exc.id}"
            money = exc.outcome in ("money_without_payment", "duplicate", "amount_mismatch",
                                    "held_channel_money")
            details: dict[str, str | int | bool | None] = {
                "exception": exc.id, "action": action, "amount": exc.amount}
            if action == "apply_to_payment":
                if not money:
                    raise pe.FailedPrecondition("no money to apply")
                named = exc.payment_ids.split()
                target = payment_id or (named[0] if named else "")
                if exc.source.startswith("channel:"):
                    row = lock_payment(s, target) if target else None
                    if row is None or not _in_scope(row, agency):
                        raise pe.NotFound("no such payment", metadata={"payment": target})
                    # Money a channel confirmed and we held: the payment has not received it.
                    fx = apply_credit(payment_from_row(row), exc.amount,
                                      source=Account.SUSPENSE, key=key, now=now, actor=actor,
                                      resolution=True)
                    # Now applied; the statement should show it (it was posted to CLEARING
                    # when held).
                    self._move_settled(s, exc, row)
                    s.execute(update(ChannelEventRow).where(
                        ChannelEventRow.channel == exc.source.split(":", 1)[1],
                        ChannelEventRow.transaction_id == exc.line_keys).values(
                        outcome="applied", payment_id=row.id))
                else:
                    fx = self._apply_statement_money(s, exc, target, named, key=key, now=now,
                                                     actor=actor, details=details,
                                                     agency=agency)
                values = payment_values(fx.payment, now)
                if values["dossier_key"] is not None:
                    # A late payment re-opened: its dossier may have been given a new payment
                    # since (one live payment per dossier).
                    live = s.execute(select(PaymentRow.id).where(
                        PaymentRow.dossier_key == values["dossier_key"],
                        PaymentRow.id != fx.payment.id)).scalar()
                    if live is not None:
                        raise pe.Conflict(
                            "the dossier has another payment that is open or paid: apply the "
                            "money to it, or return it to its sender (refund_to_sender)",
                            reason="DOSSIER_ALREADY_HAS_PAYMENT",
                            metadata={"payment": f"payments/{live}"})
                s.execute(update(PaymentRow).where(PaymentRow.id == fx.payment.id).values(
                    **values))
                record_transitions(s, fx.transitions, request_id=request_id)
                post_ledger(s, fx.ledger)
                if fx.became_paid:
                    enqueue(s, "receipt.issue", fx.payment.id, {"payment": fx.payment.id}, now)
            elif exc.outcome == "unexplained_debit" and action in ("refund_paid_out",
                                                                    "write_off"):
                # Money that left the account: a granted refund paid out, or a bank charge.
                other = Account.REFUNDS_PAYABLE if action == "refund_paid_out" \
                    else Account.ADJUSTMENTS
                post_ledger(s, [transaction(key, now, action, {other: exc.amount},
                                            {Account.SUSPENSE: exc.amount})])
            elif action == "refund_paid_out":
                raise pe.FailedPrecondition("only money leaving the account pays a refund out")
            elif action in ("refund_to_sender", "write_off"):
                if money:
                    other = Account.REFUNDS_PAYABLE if action == "refund_to_sender" \
                        else Account.ADJUSTMENTS
                    post_ledger(s, [transaction(key, now, action, {Account.SUSPENSE: exc.amount},
                                                {other: exc.amount})])
                elif exc.outcome == "payment_without_money" and action == "write_off":
                    pid = exc.payment_ids.split(" ")[0]
                    row = lock_payment(s, pid)
                    if row is not None:
                        # Only what no statement has shown since: a line that came after the
                        # run settled CLEARING for the rest.
                        amount = min(exc.amount, self._unsettled(s, row))
                        if not amount:
                            raise pe.FailedPrecondition(
                                "a statement has shown this money since: nothing is left to "
                                "write off (dismiss the exception)", reason="MONEY_SINCE_SHOWN")
                        post_ledger(s, [transaction(
                            key, now, action, {Account.ADJUSTMENTS: amount},
                            {Account.clearing(row.channel): amount})])
                        s.execute(update(PaymentRow).where(PaymentRow.id == pid).values(
                            settled=PaymentRow.settled + amount))
                        details.update(payment=pid, written_off=amount)
            elif action == "issue_receipt":
                for pid in exc.payment_ids.split():
                    enqueue(s, "receipt.issue", pid, {"payment": pid}, now)
            s.execute(update(ExceptionRow).where(ExceptionRow.id == exc.id).values(
                state="resolved", resolution=action, resolved_by=actor[:200], resolved_at=now))
            audit(s, at=now, request_id=request_id, actor=actor, action="exception.resolve",
                  details=details)
            s.flush()
            return exc

    def _apply_statement_money(self, s: Session, exc: ExceptionRow, target: str,
                               named: list[str], *, key: str, now: dt.datetime, actor: str,
                               details: dict[str, str | int | bool | None],
                               agency: str | None) -> Effects:
        """Statement money on SUSPENSE applied to ``target``: it first shows the channel money
        not yet seen on a statement of the payments the line is for (the one the officer names,
        or those the reconciliation named, the target first), which settles their CLEARING;
        only the rest is credited to the target (see ``apply_statement_money``)."""
        shown = named if not named or target in named else [target]
        order = [target] + [pid for pid in shown if pid != target]
        rows = {pid: lock_payment(s, pid) for pid in sorted(set(order) - {""})}
        row = rows.get(target)
        if row is None or not _in_scope(row, agency):
            raise pe.NotFound("no such payment", metadata={"payment": target})
        unsettled = [Unsettled(pid, Account.clearing(r.channel), self._unsettled(s, r))
                     for pid in order if (r := rows.get(pid)) is not None]
        result = apply_statement_money(payment_from_row(row), exc.amount, unsettled=unsettled,
                                       key=key, now=now, actor=actor)
        for pid, amount in result.settled:
            s.execute(update(PaymentRow).where(PaymentRow.id == pid).values(
                settled=PaymentRow.settled + amount))
        details.update(payment=target, settled=exc.amount - result.credited,
                       credited=result.credited)
        return result.effects

    def _move_settled(self, s: Session, exc: ExceptionRow, target: PaymentRow) -> None:
        """Held channel money applied to another payment than the one the channel named takes
        with it the part of that payment's ``settled`` it accounts for: a statement may already
        have shown it (and settled CLEARING) under the named payment's reference. Without the
        move, the named payment's settled would exceed its confirmed money and the target's
        would look unsettled, so a later statement line would settle CLEARING twice."""
        named = exc.payment_ids.strip()
        if not named or named == target.id:
            return
        source = lock_payment(s, named)
        if source is None:
            return
        confirmed = s.execute(select(func.coalesce(func.sum(ChannelEventRow.amount), 0)).where(
            ChannelEventRow.payment_id == source.id,
            ChannelEventRow.outcome.in_(("applied", "held")))).scalar_one()
        moved = min(exc.amount, max(0, source.settled - (int(confirmed) - exc.amount)))
        if moved:
            s.execute(update(PaymentRow).where(PaymentRow.id == source.id).values(
                settled=PaymentRow.settled - moved))
            s.execute(update(PaymentRow).where(PaymentRow.id == target.id).values(
                settled=PaymentRow.settled + moved))

    @staticmethod
    def _unsettled(s: Session, row: PaymentRow) -> int:
        """Money the payment's channels confirmed (applied or held) that no statement showed."""
        confirmed = s.execute(select(func.coalesce(func.sum(ChannelEventRow.amount), 0)).where(
            ChannelEventRow.payment_id == row.id,
            ChannelEventRow.outcome.in_(("applied", "held")))).scalar_one()
        return max(0, int(confirmed) - row.settled)

    # ------------------------------------------------------------ operations
    def start_operation(self, kind: str, *, caller: str, now: dt.datetime,
                        agency: str = "", session: Session | None = None) -> str:
        """A new operation, running (in ``session``'s transaction when given)."""
        op_id = new_id()
        values = dict(id=op_id, kind=kind, caller=caller, agency_code=agency, state="running",
                      progress=0, total=0, result_json="{}", error="", created_at=now)
        if session is not None:
            session.execute(insert(OperationRow).values(**values))
            return op_id
        with self.db.write() as s:
            s.execute(insert(OperationRow).values(**values))
        return op_id

    def progress(self, op_id: str, done: int, total: int) -> None:
        with self.db.write() as s:
            s.execute(update(OperationRow).where(OperationRow.id == op_id).values(
                progress=done, total=total))

    def finish_operation(self, op_id: str, *, result: dict[str, Any] | None, error: str,
                         now: dt.datetime) -> None:
        with self.db.write() as s:
            s.execute(update(OperationRow).where(OperationRow.id == op_id).values(
                state="failed" if error else "done", error=error[:300],
                result_json=json.dumps(result or {}), done_at=now))

    def operation(self, op_id: str, *, agency: str | None = None) -> OperationRow:
        with self.db.read() as s:
            row = s.get(OperationRow, op_id)
        if row is None or (agency is not None and row.agency_code != agency):
            raise pe.NotFound("no such operation")
        return row

    def items(self, run_id: str) -> list[ReconciliationItem]:
        with self.db.read() as s:
            rows = s.execute(select(ReconItemRow).where(ReconItemRow.run_id == run_id)
                             .order_by(ReconItemRow.id)).scalars().all()
        return [ReconciliationItem(Outcome(r.outcome), r.amount, tuple(r.line_keys.split()),
                                   tuple(r.payment_ids.split()), MatchMethod(r.method), r.shape,
                                   r.note) for r in rows]

    def unreconciled_count(self) -> int:
        with self.db.read() as s:
            return int(s.execute(select(func.count()).select_from(StatementLineRow).where(
                StatementLineRow.reconciled.is_(False))).scalar_one())


def _in_scope(row: PaymentRow, agency: str | None) -> bool:
    return agency is None or row.agency_code == agency


def _item_agency(item: ReconciliationItem, account: str, agency_of: dict[str, str]) -> str:
    """Whose money an item is: the agency of the payment it names, else of the account."""
    for pid in item.payment_ids:
        if pid in agency_of:
            return agency_of[pid]
    return agency_of.get(f"account:{account}", "")


def _line_values(statement_pk: int, line: StatementLine) -> dict[str, Any]:
    return {"statement_id": statement_pk, "account": line.account, "key": line.key[:100],
            "amount": line.amount, "credit": line.credit, "booking_date": line.booking_date,
            "value_date": line.value_date, "bank_ref": line.bank_ref[:100],
            "end_to_end": line.end_to_end[:100], "remittance": line.remittance[:500],
            "counterparty": line.counterparty[:200], "counter_account": line.counter_account[:40],
            "reconciled": False}
