"""Bank statements and channel transaction lists as CSV.

Banks export statements as CSV with their own column names; :class:`BankCsvProfile` maps them
(the default profile names the columns below). Amounts are whole đồng, optionally with ``.`` or
``,`` thousands separators; a direction column (``C``/``D``) or a signed amount says credit or
debit. Errors name the line.

Default bank CSV columns: ``booking_date,value_date,reference,amount,direction,description,
counter_account,counter_name``.

Channel transaction lists (the national platform's and a gateway's daily lists) use
``reference,transaction_id,amount,paid_at,status`` (``paid_at`` ISO 8601 with offset, ``status``
``paid``/``failed``/``refunded``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from payments.errors import StatementError
from payments.reconcile.camt053 import Statement, StatementLine, distinct_keys, entry_key

__all__ = ["BankCsvProfile", "ChannelRecord", "parse_bank_csv", "parse_channel_list"]


@dataclass(frozen=True, slots=True)
class BankCsvProfile:
    """The column names (and delimiter) of a bank's CSV statement export."""
    booking_date: str = "booking_date"
    value_date: str = "value_date"
    reference: str = "reference"
    amount: str = "amount"
    direction: str = "direction"  # empty name: the amount is signed
    description: str = "description"
    counter_account: str = "counter_account"
    counter_name: str = "counter_name"
    date_format: str = "%Y-%m-%d"
    delimiter: str = ","

    @classmethod
    def from_config(cls, data: dict[str, str]) -> BankCsvProfile:
        unknown = set(data) - set(cls.__slots__)
        if unknown:
            raise StatementError(f"unknown bank CSV profile key {sorted(unknown)[0]!r}")
        return cls(**data)


def _whole(text: str, line: int) -> int:
    cleaned = text.strip().replace(".", "").replace(",", "").replace(" ", "")
    sign = -1 if cleaned.startswith("-") else 1
    cleaned = cleaned.lstrip("+-")
    if not cleaned.isdigit():
        raise StatementError(f"line {line}: amount {text!r} is not a whole number of đồng")
    return sign * int(cleaned)


def parse_bank_csv(data: bytes, *, account: str, profile: BankCsvProfile | None = None
                   ) -> list[StatementLine]:
    """Statement lines from a bank's CSV export (UTF-8), read with ``profile``'s column names."""
    p = profile or BankCsvProfile()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError("the file is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=p.delimiter)
    needed = [p.booking_date, p.reference, p.amount, p.description]
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise StatementError(f"line 1: missing column {missing[0]!r}")
    lines = []
    for row in reader:
        n = reader.line_num
        try:
            booking = dt.datetime.strptime(row[p.booking_date].strip(), p.date_format).date()
            value_text = row.get(p.value_date) or ""
            value = dt.datetime.strptime(value_text.strip(), p.date_format).date() \
                if value_text.strip() else None
        except ValueError:
            raise StatementError(f"line {n}: a date does not match {p.date_format}") from None
        amount = _whole(row[p.amount], n)
        if p.direction and row.get(p.direction):
            d = row[p.direction].strip().upper()
            if d not in ("C", "D", "CR", "DR", "CRDT", "DBIT"):
                raise StatementError(f"line {n}: direction must be C or D")
            credit = d.startswith("C")
        else:
            credit = amount > 0
        reference = row[p.reference].strip()
        if not reference:
            raise StatementError(f"line {n}: the bank reference is empty")
        lines.append(StatementLine(account, entry_key(reference, booking, credit, abs(amount)),
                                   abs(amount), credit, booking, value,
                                   reference, "", row[p.description].strip(),
                                   (row.get(p.counter_name) or "").strip(),
                                   (row.get(p.counter_account) or "").strip()))
    return distinct_keys([Statement("csv", account, lines=lines)])[0].lines


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """One payment as a channel's own list reports it."""
    reference: str
    transaction_id: str
    amount: int
    paid_at: dt.datetime
    status: str


def parse_channel_list(data: bytes) -> list[ChannelRecord]:
    """A channel's list of payments from CSV (``reference, transaction_id, amount, paid_at, status``)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError("the file is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    cols = ("reference", "transaction_id", "amount", "paid_at", "status")
    missing = [c for c in cols if c not in (reader.fieldnames or [])]
    if missing:
        raise StatementError(f"line 1: missing column {missing[0]!r}")
    out = []
    for row in reader:
        n = reader.line_num
        try:
            at = dt.datetime.fromisoformat(row["paid_at"].strip())
        except ValueError:
            raise StatementError(f"line {n}: paid_at is not ISO 8601") from None
        if at.tzinfo is None:
            raise StatementError(f"line {n}: paid_at needs a UTC offset")
        status = row["status"].strip().lower()
        if status not in ("paid", "failed", "refunded"):
            raise StatementError(f"line {n}: unknown status {status!r}")
        out.append(ChannelRecord(row["reference"].strip(), row["transaction_id"].strip(),
                                 _whole(row["amount"], n), at.astimezone(dt.UTC), status))
    return out
