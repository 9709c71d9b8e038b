"""E-receipts (biên lai điện tử, Decree 123/2020 as amended by Decree 70/2025; Circular 32/2025).

A receipt has a template symbol (``EBL01``/``EBL02``), a series (2-digit year + ``T``, e.g.
``25T``) and a 7-digit number that starts at 1 on 1 January (Vietnam time) for each (template,
series, year), without gaps, never reused. Numbers are allocated by the store in the same
transaction that stores the receipt; the rules here are pure.

One paid payment yields exactly one original receipt per collecting body: when phí and lệ phí go to
different bodies they get separate receipts. Corrections never change an original: a replacement
or an adjustment is a new numbered receipt that references it, a cancellation is a signed notice.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from payments.errors import InvalidInput, ReceiptNumberingError
from payments.fees.catalogue import FeeKind
from payments.money import local_date
from payments.payments.model import Payer, Payment

__all__ = [
    "MAX_NUMBER",
    "Organisation",
    "ReceiptData",
    "ReceiptKind",
    "ReceiptLine",
    "RelatedReceipt",
    "check_gapless",
    "format_number",
    "group_lines",
    "next_number",
    "series_for",
    "validate_template",
]

MAX_NUMBER = 9_999_999
_TEMPLATE = re.compile(r"^EBL0[12]$")


class ReceiptKind(StrEnum):
    """An original receipt, a replacement for one, or an adjustment to one."""
    ORIGINAL = "original"
    REPLACEMENT = "replacement"
    ADJUSTMENT = "adjustment"


def validate_template(template: str) -> str:
    """``template`` if it is a receipt template symbol (``EBL01`` or ``EBL02``);
    :class:`~payments.errors.InvalidInput` otherwise."""
    if not _TEMPLATE.fullmatch(template):
        raise InvalidInput("receipt template symbol must be EBL01 or EBL02")
    return template


def series_for(at: dt.datetime, *, suffix: str = "T") -> tuple[str, int]:
    """(series, year) for a receipt issued at ``at``: the year is Vietnam's calendar year."""
    year = local_date(at).year
    if not re.fullmatch(r"[A-Z]", suffix):
        raise InvalidInput("series suffix is one capital letter")
    return f"{year % 100:02d}{suffix}", year


def next_number(last: int) -> int:
    """The number after ``last`` in a series; :class:`ReceiptNumberingError` once the series is exhausted."""
    if last >= MAX_NUMBER:
        raise ReceiptNumberingError("the receipt series is exhausted for this year")
    return last + 1


def format_number(number: int) -> str:
    """A receipt number as printed: seven digits (``0000001`` to ``9999999``)."""
    if not 1 <= number <= MAX_NUMBER:
        raise ReceiptNumberingError("receipt numbers run from 0000001 to 9999999")
    return f"{number:07d}"


def check_gapless(numbers: Sequence[int]) -> bool:
    """True when ``numbers`` are exactly 1..N (in any order)."""
    return sorted(numbers) == list(range(1, len(numbers) + 1))


@dataclass(frozen=True, slots=True)
class Organisation:
    """The collecting body as printed on its receipts."""

    agency_code: str
    name: str
    tax_code: str
    address: str
    budget_unit_code: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One item of a receipt (negative on an adjustment that lowers the original)."""
    item_code: str
    name: str
    kind: FeeKind
    amount: int  # negative on an adjustment that lowers the original


@dataclass(frozen=True, slots=True)
class RelatedReceipt:
    """The original a replacement or adjustment refers to (TTBLLQuan)."""

    template: str
    series: str
    number: int
    issued_on: dt.date
    reason: str


@dataclass(frozen=True)
class ReceiptData:
    """Everything an e-receipt states: its template, series and number, the collecting organisation, the
    payer, the lines and totals, and what it replaces or adjusts."""
    id: str
    kind: ReceiptKind
    template: str
    series: str
    number: int
    issued_at: dt.datetime
    collector: Organisation
    payer: Payer
    lines: tuple[ReceiptLine, ...]
    payment_method: str
    payment_id: str
    procedure_code: str
    dossier_code: str
    related: RelatedReceipt | None = None

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def label(self) -> str:
        return f"{self.template}-{self.series}-{format_number(self.number)}"


def group_lines(payment: Payment) -> list[tuple[str, tuple[ReceiptLine, ...]]]:
    """The receipts a paid payment needs: (collecting body, lines) in a stable order. One receipt
    when one body collects everything, one per body otherwise."""
    groups: dict[str, list[ReceiptLine]] = {}
    for line in payment.lines:
        groups.setdefault(line.collector, []).append(
            ReceiptLine(line.item_code, line.name, line.kind, line.amount))
    return [(collector, tuple(lines)) for collector, lines in groups.items()]
