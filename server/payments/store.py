"""The payments store: payments, callbacks, refunds and expiry on the database.

Every operation is one write transaction holding the payment row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's single writer), the transitions, ledger transactions, outbox rows and audit
events it produces: a payment never becomes paid without its receipt work queued, and never
changes without its audit record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import payments.errors as pe
from payments.accounts import AccountKind, CollectionAccount
from payments.channels.iso11649 import (
    create_reference,
    find_references,
    is_valid_reference,
    valid_neighbours,
)
from payments.fees.catalogue import FeeCatalogue, Quote, quote
from payments.ledger.core import Account, transaction
from payments.money import local_date
from payments.payments.model import (
    Effects,
    Payer,
    Payment,
    apply_credit,
    cancel_payment,
    expire_payment,
    new_payment,
    open_payment,
    refund_payment,
)
from payments.payments.states import OPEN_STATES, PaymentState
from server.payments.common import (
    audit,
    enqueue,
    idempotent,
    lock_payment,
    new_id,
    payment_from_row,
    payment_values,
    post_ledger,
    record_transitions,
)
from server.storage.db import Database
from server.storage.payments import (
    ChannelEventRow,
    CollectionAccountRow,
    ExceptionRow,
    PaymentRow,
    RefundRow,
    StatementLineRow,
    TransitionRow,
)

__all__ = ["ConfirmOutcome", "ConfirmResult", "PaymentsStore"]

S = PaymentState


class ConfirmOutcome(StrEnum):
    APPLIED = "applied"
    ALREADY_CONFIRMED = "already_confirmed"
    UNKNOWN_REFERENCE = "unknown_reference"
    HELD = "held"  # money kept as an exception (wrong amount, late, failed payment)
    FAILED = "failed"  # the channel reports a failed payment: nothing to apply


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    outcome: ConfirmOutcome
    payment_id: str = ""


class PaymentsStore:
    def __init__(self, db: Database, *, catalogue: FeeCatalogue, ttl: dt.timedelta,
                 webhooks: Mapping[str, Sequence[Mapping[str, str]]] | None = None) -> None:
        self.db = db
        self.catalogue = catalogue
        self.ttl = ttl
        self.webhooks = dict(webhooks or {})

    # ------------------------------------------------------------ accounts
    def register_account(self, account: CollectionAccount, *, actor: str, request_id: str,
                         now: dt.datetime) -> None:
        with self.db.write() as s:
            values = {"bank_bin": account.bank_bin, "account_number": account.account_number,
                      "account_name": account.account_name, "kind": account.kind.value,
                      "treasury_office_code": account.treasury_office_code,
                      "budget_unit_code": account.budget_unit_code, "updated_at": now}
            if s.get(CollectionAccountRow, account.agency_code) is None:
                s.execute(insert(CollectionAccountRow).values(agency_code=account.agency_code,
                                                              **values))
            else:
                s.execute(update(CollectionAccountRow).where(
                    CollectionAccountRow.agency_code == account.agency_code).values(**values))
            audit(s, at=now, request_id=request_id, actor=actor, action="account.register",
                  details={"agency": account.agency_code, "bank_bin": account.bank_bin})

    def account(self, agency_code: str) -> CollectionAccount:
        with self.db.read() as s:
            row = s.get(CollectionAccountRow, agency_code)
        if row is None:
            raise pe.FailedPrecondition("the agency has no registered collection account",
                                        reason="NO_COLLECTION_ACCOUNT",
                                        metadata={"agency_code": agency_code})
        return CollectionAccount(row.agency_code, row.bank_bin, row.account_number,
                                 row.account_name, AccountKind(row.kind),
                                 row.treasury_office_code, row.budget_unit_code)

    def _idempotent(self, *, caller: str, method: str, request_id: str,
                    fields: Mapping[str, Any], action: Callable[[Session], str]) -> str:
        return idempotent(self.db, caller=caller, method=method, request_id=request_id,
                          fields=fields, action=action)

    # ------------------------------------------------------------ payments
    def quote(self, procedure_code: str, *, province: str, on: dt.date) -> Quote:
        return quote(self.catalogue, procedure_code, on=on, province=province)

    def create_payment(self, *, caller: str, request_id: str, agency_code: str, province: str,
                       procedure_code: str, dossier_code: str, payer: Payer, channel: str,
                       now: dt.datetime) -> Payment:
        fields = {"agency_code": agency_code, "province": province, "procedure": procedure_code,
                  "dossier": dossier_code, "payer": dataclasses.asdict(payer), "channel": channel}

        def action(s: Session) -> str:
            q = self.quote(procedure_code, province=province, on=local_date(now))
            pid = new_id()
            p = new_payment(pid, q, agency_code=agency_code, dossier_code=dossier_code,
                            payer=payer, reference=create_reference(pid.upper()[:21]),
                            channel=channel, now=now, ttl=self.ttl)
            try:
                with s.begin_nested():
                    s.execute(insert(PaymentRow).values(id=p.id, settled=0, channel_url="",
                                                        **payment_values(p, now)))
            except IntegrityError:
                live = s.execute(select(PaymentRow.id).where(
                    PaymentRow.dossier_key == f"{agency_code}:{dossier_code}"[:130])).scalar()
                raise pe.Conflict("the dossier already has a payment that is open or paid",
                                  reason="DOSSIER_ALREADY_HAS_PAYMENT",
                                  metadata={"payment": f"payments/{live}"}) from None
            audit(s, at=now, request_id=request_id, actor=caller, action="payment.create",
                  details={"payment": p.id, "amount_due": p.amount_due, "channel": channel,
                           "procedure": p.procedure_code})
            return p.id

        pid = self._idempotent(caller=caller, method="CreatePayment", request_id=request_id,
                               fields=fields, action=action)
        return self.get(pid)

    def open(self, payment_id: str, *, channel_url: str, actor: str, request_id: str,
             now: dt.datetime) -> Payment:
        """created -> awaiting_payment once the channel knows of the payment."""
        with self.db.write() as s:
            row = lock_payment(s, payment_id)
            if row is None:
                raise pe.NotFound("no such payment")
            p = payment_from_row(row)
            if p.state is not S.CREATED:
                return p
            fx = open_payment(p, now=now, actor=actor)
            self._store(s, fx, now, request_id, channel_url=channel_url)
            return fx.payment

    def get(self, payment_id: str) -> Payment:
        with self.db.read() as s:
            row = s.get(PaymentRow, payment_id)
            if row is None:
                raise pe.NotFound("no such payment", metadata={"payment": payment_id})
            return payment_from_row(row)

    def channel_url(self, payment_id: str) -> str:
        with self.db.read() as s:
            row = s.get(PaymentRow, payment_id)
            return row.channel_url if row is not None else ""

    def by_reference(self, reference: str) -> Payment | None:
        with self.db.read() as s:
            row = s.execute(select(PaymentRow).where(PaymentRow.reference == reference)
                            ).scalar_one_or_none()
            return payment_from_row(row) if row is not None else None

    def resolve_reference(self, text: str) -> str:
        """The reference a transfer text means: a valid one of ours, else the single one of ours
        one typo away from an invalid reference in the text (check digits tell a typo from a
        stranger), else "" (the money is held as unidentified)."""
        refs = find_references(text)
        valid = [r for r in refs if is_valid_reference(r)]
        with self.db.read() as s:
            if valid:
                found = s.execute(select(PaymentRow.reference).where(
                    PaymentRow.reference.in_(valid))).scalars().all()
                return found[0] if found else valid[0]
            candidates = [c for r in refs for c in valid_neighbours(r)]
            if not candidates:
                return ""
            found = s.execute(select(PaymentRow.reference).where(
                PaymentRow.reference.in_(candidates))).scalars().all()
        return found[0] if len(found) == 1 else ""

    def list_payments(self, *, agency_code: str | None, after: str, size: int,
             state: str | None = None) -> list[Payment]:
        with self.db.read() as s:
            stmt = select(PaymentRow).where(PaymentRow.id > after)
            if agency_code is not None:
                stmt = stmt.where(PaymentRow.agency_code == agency_code)
            if state:
                stmt = stmt.where(PaymentRow.state == state)
            rows = s.execute(stmt.order_by(PaymentRow.id).limit(size + 1)).scalars().all()
            return [payment_from_row(r) for r in rows]

    def _store(self, s: Session, fx: Effects, now: dt.datetime, request_id: str,
               **extra: Any) -> None:
        s.execute(update(PaymentRow).where(PaymentRow.id == fx.payment.id).values(
            **payment_values(fx.payment, now), **extra))
        record_transitions(s, fx.transitions, request_id=request_id)
        post_ledger(s, fx.ledger)
        if fx.became_paid:
            enqueue(s, "receipt.issue", fx.payment.id, {"payment": fx.payment.id}, now)
            self._webhook(s, fx.payment, "payment.paid", now)

    def _webhook(self, s: Session, p: Payment, event: str, now: dt.datetime) -> None:
        for i, sub in enumerate(self.webhooks.get(p.agency_code, ())):
            enqueue(s, "webhook", f"{p.id}:{event}:{i}", {
                "url": sub["url"], "secret_index": i, "agency": p.agency_code, "event": event,
                "data": {"payment": p.name, "state": p.state.value, "amount_due": p.amount_due,
                         "collected": p.collected, "refunded": p.refunded,
                         "dossier_code": p.dossier_code}}, now)

    # ------------------------------------------------------------ money in
    def confirm(self, *, channel: str, transaction_id: str, reference: str, amount: int,
                at: dt.datetime, success: bool, exact_amount: bool, request_id: str,
                now: dt.datetime) -> ConfirmResult:
        """Apply a verified channel confirmation exactly once. Duplicates are answered
        ALREADY_CONFIRMED; a wrong amount or money for a closed payment is held as an exception
        (posted to SUSPENSE), never credited and never dropped."""
        actor = f"channel:{channel}"
        try:
            with self.db.write() as s:
                row = s.execute(select(PaymentRow).where(PaymentRow.reference == reference)
                                ).scalar_one_or_none()
                if row is None:
                    s.execute(insert(ChannelEventRow).values(
                        channel=channel, transaction_id=transaction_id, reference=reference,
                        payment_id=None, amount=amount, at=at, outcome="unknown_reference"))
                    if success:
                        self._hold(s, channel, transaction_id, amount, "", now,
                                   "money for an unknown reference", request_id, agency="")
                    return ConfirmResult(ConfirmOutcome.UNKNOWN_REFERENCE)
                # The payment as it is now, under its row lock: the row read above may have
                # changed since (a concurrent transfer), and the session would return it as read.
                row = lock_payment(s, row.id)
                assert row is not None
                event = {"channel": channel, "transaction_id": transaction_id,
                         "reference": reference, "payment_id": row.id, "amount": amount,
                         "at": at}
                if not success:
                    s.execute(insert(ChannelEventRow).values(**event, outcome="failed"))
                    audit(s, at=now, request_id=request_id, actor=actor, action="payment.failed",
                          details={"payment": row.id, "transaction": transaction_id})
                    return ConfirmResult(ConfirmOutcome.FAILED, row.id)
                p = payment_from_row(row)
                problem = ""
                if p.state not in OPEN_STATES:
                    problem = f"money for a {p.state.value} payment"
                elif p.state is S.CREATED:
                    problem = "money for a payment not yet opened"
                elif exact_amount and amount != p.outstanding:
                    problem = f"amount {amount} differs from the {p.outstanding} due"
                shown = _resolved_statement_line(s, transaction_id)
                if shown is not None and shown[1] == "apply_to_payment" and shown[2] == amount:
                    # The bank's line for this transfer came first and a finance officer
                    # applied it: the payment has this money already; it is not credited again.
                    s.execute(insert(ChannelEventRow).values(**event, outcome="statement_first"))
                    audit(s, at=now, request_id=request_id, actor=actor,
                          action="payment.confirmed_after_statement",
                          details={"payment": row.id, "transaction": transaction_id,
                                   "amount": amount, "statement_line": shown[0]})
                    return ConfirmResult(ConfirmOutcome.ALREADY_CONFIRMED, row.id)
                if shown is not None:
                    problem = (f"the bank statement line {shown[0]} for this transfer "
                               f"({shown[2]} đồng) was resolved as {shown[1]}")
                if problem:
                    s.execute(insert(ChannelEventRow).values(**event, outcome="held"))
                    self._hold(s, channel, transaction_id, amount, p.id, now, problem,
                               request_id, agency=p.agency_code)
                    return ConfirmResult(ConfirmOutcome.HELD, p.id)
                s.execute(insert(ChannelEventRow).values(**event, outcome="applied"))
                fx = apply_credit(p, amount, source=Account.clearing(channel),
                                  key=f"{channel}:{transaction_id}", now=now, actor=actor)
                self._store(s, fx, now, request_id)
                return ConfirmResult(ConfirmOutcome.APPLIED, p.id)
        except IntegrityError:
            with self.db.read() as s:
                known = s.execute(select(ChannelEventRow.payment_id).where(
                    ChannelEventRow.channel == channel,
                    ChannelEventRow.transaction_id == transaction_id)).first()
            if known is None:
                raise
            return ConfirmResult(ConfirmOutcome.ALREADY_CONFIRMED, known[0] or "")

    def _hold(self, s: Session, channel: str, transaction_id: str, amount: int, payment_id: str,
              now: dt.datetime, note: str, request_id: str, *, agency: str) -> None:
        post_ledger(s, [transaction(f"{channel}:{transaction_id}:held", now, "held",
                                    {Account.clearing(channel): amount},
                                    {Account.SUSPENSE: amount}, payment=payment_id, memo=note)])
        s.execute(insert(ExceptionRow).values(
            source=f"channel:{channel}", outcome="held_channel_money", account="",
            agency_code=agency,
            amount=amount, line_keys=transaction_id, payment_ids=payment_id, note=note[:300],
            state="open", resolution="", resolved_by="", created_at=now))
        audit(s, at=now, request_id=request_id, actor=f"channel:{channel}",
              action="payment.money_held", outcome="HELD",
              details={"payment": payment_id, "transaction": transaction_id, "amount": amount,
                       "note": note})

    # ------------------------------------------------------------ refunds, expiry
    def refund(self, *, caller: str, request_id: str, payment_id: str, amount: int,
               reason: str, now: dt.datetime, agency_code: str | None) -> str:
        fields = {"payment": payment_id, "amount": amount, "reason": reason}

        def action(s: Session) -> str:
            row = lock_payment(s, payment_id)
            if row is None or (agency_code is not None and row.agency_code != agency_code):
                raise pe.NotFound("no such payment", metadata={"payment": payment_id})
            p = payment_from_row(row)
            refund_id = new_id()
            fx = refund_payment(p, amount, key=f"refund:{refund_id}", now=now, actor=caller)
            self._store(s, fx, now, request_id)
            s.execute(insert(RefundRow).values(id=refund_id, payment_id=p.id, amount=amount,
                                               reason=reason[:500], state="granted",
                                               created_at=now))
            audit(s, at=now, request_id=request_id, actor=caller, action="payment.refund",
                  details={"payment": p.id, "refund": refund_id, "amount": amount})
            self._webhook(s, fx.payment, f"payment.refunded.{refund_id}", now)
            return f"payments/{p.id}/refunds/{refund_id}"

        return self._idempotent(caller=caller, method="RefundPayment", request_id=request_id,
                                fields=fields, action=action)

    def cancel(self, payment_id: str, *, actor: str, request_id: str, now: dt.datetime
               ) -> Payment:
        with self.db.write() as s:
            row = lock_payment(s, payment_id)
            if row is None:
                raise pe.NotFound("no such payment")
            fx = cancel_payment(payment_from_row(row), now=now, actor=actor)
            self._store(s, fx, now, request_id)
            return fx.payment

    def expire_due(self, *, now: dt.datetime, limit: int = 500) -> int:
        with self.db.read() as s:
            ids = s.execute(select(PaymentRow.id).where(
                PaymentRow.state.in_([x.value for x in OPEN_STATES]),
                PaymentRow.expires_at <= now).limit(limit)).scalars().all()
        done = 0
        for pid in ids:
            with self.db.write() as s:
                row = lock_payment(s, pid)
                if row is None or S(row.state) not in OPEN_STATES or row.expires_at > now:
                    continue
                fx = expire_payment(payment_from_row(row), now=now)
                self._store(s, fx, now, "expiry")
                done += 1
        return done

    def pending_for_mop_up(self, *, older_than: dt.datetime, limit: int = 200
                           ) -> list[Payment]:
        with self.db.read() as s:
            rows = s.execute(select(PaymentRow).where(
                PaymentRow.state == S.AWAITING_PAYMENT.value,
                PaymentRow.created_at <= older_than).order_by(PaymentRow.created_at)
                .limit(limit)).scalars().all()
            return [payment_from_row(r) for r in rows]

    def transitions(self, payment_id: str) -> list[dict[str, Any]]:
        with self.db.read() as s:
            rows = s.execute(select(TransitionRow).where(TransitionRow.payment_id == payment_id)
                             .order_by(TransitionRow.id)).scalars().all()
            return [{"from": r.from_state, "to": r.to_state, "at": r.at, "reason": r.reason,
                     "actor": r.actor} for r in rows]


_MONEY_OUTCOMES = ("money_without_payment", "duplicate", "amount_mismatch")


def _resolved_statement_line(s: Session, transaction_id: str
                             ) -> tuple[str, str, int] | None:
    """The key and amount of a reconciled statement line whose bank reference or end-to-end id
    is this channel transaction, and how a finance officer resolved its money, if they did."""
    amounts: dict[str, int] = {k: a for k, a in s.execute(select(
        StatementLineRow.key, StatementLineRow.amount).where(
        StatementLineRow.reconciled.is_(True), StatementLineRow.credit.is_(True),
        or_(StatementLineRow.bank_ref == transaction_id,
            StatementLineRow.end_to_end == transaction_id)))}
    keys = set(amounts)
    if not keys:
        return None
    for exc in s.execute(select(ExceptionRow).where(
            ExceptionRow.state == "resolved", ExceptionRow.outcome.in_(_MONEY_OUTCOMES),
            or_(*(ExceptionRow.line_keys.contains(k) for k in keys)))).scalars():
        hit = keys.intersection(exc.line_keys.split())
        if hit:
            key = min(hit)
            return key, exc.resolution, int(amounts[key])
    return None
