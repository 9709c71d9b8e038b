"""The periodic usage report of receipts (after form BC26/BLĐT): per template and series, the
numbers used in the period, how many, how many were cancelled, and the total collected.
The period is a range of Vietnamese calendar days and the report states it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from payments.money import local_date
from payments.receipts.model import ReceiptData

__all__ = ["UsageLine", "UsageReport", "usage_report"]


@dataclass(frozen=True, slots=True)
class UsageLine:
    """The receipt numbers of one template and series used (and cancelled) in a period."""
    template: str
    series: str
    first_number: int
    last_number: int
    used: int
    cancelled: int
    total_collected: int


@dataclass(frozen=True)
class UsageReport:
    """The report of receipt numbers used in a period, one line per template and series."""
    period_start: dt.date  # Vietnam calendar days, inclusive
    period_end: dt.date
    lines: tuple[UsageLine, ...]


def usage_report(receipts: Iterable[ReceiptData], *, start: dt.date, end: dt.date,
                 cancelled: Iterable[str] = ()) -> UsageReport:
    """``receipts`` may hold more than the period; those issued outside it are ignored.
    ``cancelled`` names receipt ids cancelled (their amounts are not counted as collected)."""
    cancelled_ids = set(cancelled)
    groups: dict[tuple[str, str], list[ReceiptData]] = {}
    for r in receipts:
        if start <= local_date(r.issued_at) <= end:
            groups.setdefault((r.template, r.series), []).append(r)
    lines = []
    for (template, series), items in sorted(groups.items()):
        numbers = [r.number for r in items]
        lines.append(UsageLine(
            template, series, min(numbers), max(numbers), len(items),
            sum(1 for r in items if r.id in cancelled_ids),
            sum(r.total for r in items if r.id not in cancelled_ids)))
    return UsageReport(start, end, tuple(lines))
