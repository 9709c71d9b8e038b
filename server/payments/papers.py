"""The figures of a reconciliation paper (payments/reconcile/papers.py) read from the database for
one agency's collection account and a range of Vietnamese calendar days. Read-only.

- money in and out: the account's statement lines booked in the period;
- opening balance: the first statement of the period as the bank states it (else the last
  closing balance before it, else 0); the bank's closing balance: the period's last statement;
- matched: reconciliation items matched on those lines; unmatched money: the money exceptions
  raised on those lines (unknown, duplicated, wrong amount); held: those still open;
- unmatched payments: "paid, money not received" exceptions for the agency's payments confirmed
  in the period;
- exceptions: all of these plus unexplained debits, with the resolution, who and when.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from payments.accounts import CollectionAccount
from payments.money import local_day_bounds
from payments.receipts.model import Organisation
from payments.reconcile.papers import ExceptionEntry, ReconciliationPaper
from server.storage.db import Database
from server.storage.payments import (
    ExceptionRow,
    PaymentRow,
    ReconItemRow,
    StatementLineRow,
    StatementRow,
)

__all__ = ["BANK_NAMES", "paper_for"]

# NAPAS 247 bank identification numbers of banks that hold collection accounts (BIN -> name).
BANK_NAMES = {
    "970436": "Ngân hàng TMCP Ngoại thương Việt Nam (Vietcombank)",
    "970415": "Ngân hàng TMCP Công Thương Việt Nam (VietinBank)",
    "970418": "Ngân hàng TMCP Đầu tư và Phát triển Việt Nam (BIDV)",
    "970405": "Ngân hàng Nông nghiệp và Phát triển Nông thôn Việt Nam (Agribank)",
    "970422": "Ngân hàng TMCP Quân đội (MB)",
}
_MONEY = ("money_without_payment", "duplicate", "amount_mismatch")
_PAYMENT = ("payment_without_money", "paid_without_receipt")
_RESOLUTION = {"apply_to_payment": "applied", "refund_to_sender": "refund",
               "refund_paid_out": "refunded", "write_off": "written_off",
               "issue_receipt": "matched", "dismiss": "dismissed"}


def _who(actor: str) -> str:
    """A person's name from an actor string; never an internal id."""
    if actor.startswith("reconciliation:"):
        return "Tự động (đối chiếu)"
    return actor.split(":", 1)[-1][:60] if actor else ""


def paper_for(db: Database, account: CollectionAccount, unit: Organisation | None, *,
              first_day: dt.date, last_day: dt.date, now: dt.datetime, place: str = "",
              signers: tuple[str, str, str] = ("", "", "")) -> ReconciliationPaper:
    start, end = local_day_bounds(first_day, last_day)
    number = account.account_number
    with db.read() as s:
        lines = s.execute(select(StatementLineRow).where(
            StatementLineRow.account == number, StatementLineRow.booking_date >= first_day,
            StatementLineRow.booking_date <= last_day)).scalars().all()
        by_key = {r.key: r for r in lines}
        statements = s.execute(select(StatementRow).where(
            StatementRow.account == number).order_by(StatementRow.from_date,
                                                     StatementRow.id)).scalars().all()
        items = s.execute(select(ReconItemRow).where(ReconItemRow.outcome == "matched")
                          ).scalars().all()
        money_exc = s.execute(select(ExceptionRow).where(
            ExceptionRow.account == number,
            ExceptionRow.outcome.in_((*_MONEY, "unexplained_debit")))).scalars().all()
        pay_exc = s.execute(select(ExceptionRow, PaymentRow).join(
            PaymentRow, PaymentRow.id == ExceptionRow.payment_ids).where(
            ExceptionRow.outcome.in_(_PAYMENT), PaymentRow.agency_code == account.agency_code,
            PaymentRow.paid_at >= start, PaymentRow.paid_at < end)).all()
    in_period = [st for st in statements if st.from_date and first_day <= st.from_date <= last_day]
    before = [st for st in statements if st.to_date and st.to_date < first_day]
    if in_period and in_period[0].opening is not None:
        opening = in_period[0].opening
    elif before and before[-1].closing is not None:
        opening = before[-1].closing
    else:
        opening = 0
    bank_closing = in_period[-1].closing if in_period else None
    credits = [r for r in lines if r.credit]
    debits = [r for r in lines if not r.credit]
    matched = [i for i in items if any(k in by_key for k in i.line_keys.split())]
    exceptions: list[ExceptionEntry] = []
    unmatched: list[ExceptionRow] = []
    for exc in money_exc:
        keys = [k for k in exc.line_keys.split() if k in by_key]
        if not keys:
            continue
        line = by_key[keys[0]]
        if exc.outcome in _MONEY:
            unmatched.append(exc)
        detail = f"{line.booking_date:%d/%m/%Y} {line.counterparty} – {line.remittance}".strip()
        exceptions.append(ExceptionEntry(exc.outcome, exc.amount, detail[:200],
                                         _RESOLUTION.get(exc.resolution, exc.resolution),
                                         _who(exc.resolved_by), exc.resolved_at))
    unpaid = []
    for exc, payment in pay_exc:
        payer = json.loads(payment.payer_json).get("name", "") if payment.payer_json else ""
        if exc.outcome == "payment_without_money":
            unpaid.append(exc)
        exceptions.append(ExceptionEntry(
            exc.outcome, exc.amount, f"Hồ sơ {payment.dossier_code} – {payer} – "
                                     f"mã thanh toán {payment.reference}"[:200],
            _RESOLUTION.get(exc.resolution, exc.resolution), _who(exc.resolved_by),
            exc.resolved_at))
    held = [e for e in unmatched if e.state == "open"]
    return ReconciliationPaper(
        unit_name=unit.name if unit else account.account_name,
        unit_code=account.agency_code, account_number=number,
        account_name=account.account_name,
        bank_name=BANK_NAMES.get(account.bank_bin, f"Ngân hàng mã {account.bank_bin}"),
        first_day=first_day, last_day=last_day, produced_at=now, opening_balance=opening,
        credits=(len(credits), sum(r.amount for r in credits)),
        debits=(len(debits), sum(r.amount for r in debits)),
        matched=(len(matched), sum(i.amount for i in matched)),
        unmatched_money=(len(unmatched), sum(e.amount for e in unmatched)),
        unmatched_payments=(len(unpaid), sum(e.amount for e in unpaid)),
        held=(len(held), sum(e.amount for e in held)), bank_closing_balance=bank_closing,
        exceptions=tuple(exceptions), place=place or "TP. Hồ Chí Minh", signers=signers)
