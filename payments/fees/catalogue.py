"""The fee catalogue as data, and quotes as pure functions of the catalogue and a date.

Law 97/2015/QH13 distinguishes *phí* (fees for a service) from *lệ phí* (charges for a state act);
the two may go to different collecting bodies and get separate receipts. A procedure (national
database code such as ``1.000494``, or an agency-suffixed form ``1.000494.000.00.00.H29``, with an
optional online-variant suffix ``.01``) carries fee items; each item has levels that apply from a
date, optionally until a date, nationally or in one province. Reductions (for example Circular
64/2025/TT-BTC: 50 % from 1 July 2025 to 31 December 2026) apply a percentage to matching items
within their own window.

Rounding: a reduced amount is rounded half-up to the whole đồng, per item.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from payments.errors import InvalidInput, UnknownProcedure
from payments.money import check_amount

__all__ = [
    "ALL_PROVINCES",
    "FeeCatalogue",
    "FeeItem",
    "FeeKind",
    "FeeLevel",
    "Procedure",
    "ProcedureCode",
    "Quote",
    "QuoteLine",
    "Reduction",
    "quote",
]

ALL_PROVINCES = "*"
_PROCEDURE = re.compile(
    r"^(?P<national>\d{1,2}\.\d{6})"
    r"(?:\.(?P<agency>\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}|[A-Z]\d{2}(?:\.[A-Z0-9]+)*))?"
    r"(?:\.(?P<variant>\d{2}))?$"
)
_PROVINCE = re.compile(r"^\d{2}$")


class FeeKind(StrEnum):
    """Phí (a fee for a service) or lệ phí (a charge for a state act): they are accounted and receipted
    separately."""
    PHI = "phi"  # fee (phí)
    LE_PHI = "le_phi"  # charge (lệ phí)

    @property
    def label(self) -> str:
        return "Phí" if self is FeeKind.PHI else "Lệ phí"


@dataclass(frozen=True, slots=True)
class ProcedureCode:
    """A procedure code split into its national part, agency suffix and online variant."""

    national: str
    agency: str = ""
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> ProcedureCode:
        m = _PROCEDURE.fullmatch(text.strip())
        if m is None:
            raise InvalidInput(
                "procedure code must look like 1.000494, optionally with an agency suffix "
                "(1.000494.000.00.00.H29) and an online variant (.01)",
                reason="INVALID_PROCEDURE_CODE", metadata={"field": "procedure_code"})
        return cls(m["national"], m["agency"] or "", m["variant"] or "")

    def __str__(self) -> str:
        return ".".join(p for p in (self.national, self.agency, self.variant) if p)


@dataclass(frozen=True, slots=True)
class FeeLevel:
    """An amount in force from ``valid_from`` (inclusive) until ``valid_to`` (inclusive, or open),
    nationally (``province="*"``) or in one province (2-digit code)."""

    amount: int
    valid_from: dt.date
    valid_to: dt.date | None = None
    province: str = ALL_PROVINCES

    def __post_init__(self) -> None:
        check_amount(self.amount, allow_zero=True)
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise InvalidInput("a fee level ends before it starts")
        if self.province != ALL_PROVINCES and not _PROVINCE.fullmatch(self.province):
            raise InvalidInput("province must be a 2-digit code or '*'")

    def applies(self, on: dt.date, province: str) -> bool:
        return (self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)
                and self.province in (ALL_PROVINCES, province))


@dataclass(frozen=True, slots=True)
class FeeItem:
    """One fee or charge of a procedure: its amounts by province and date (``levels``) and the body that
    collects it."""
    code: str
    name: str
    kind: FeeKind
    levels: tuple[FeeLevel, ...]
    # Agency code of the body that collects this item ("" = the agency handling the dossier).
    collector: str = ""

    def level_on(self, on: dt.date, province: str) -> FeeLevel | None:
        """The level in force: a provincial level beats the national one; among several, the one
        that started last wins (a new level from a date supersedes an open-ended older one)."""
        candidates = [lv for lv in self.levels if lv.applies(on, province)]
        if not candidates:
            return None
        return max(candidates, key=lambda lv: (lv.province != ALL_PROVINCES, lv.valid_from))


@dataclass(frozen=True, slots=True)
class Procedure:
    """An administrative procedure (by its national code, e.g. ``1.000494``) and the fee items a dossier for
    it owes."""
    code: str  # national code, e.g. "1.000494"
    name: str
    items: tuple[FeeItem, ...]


@dataclass(frozen=True, slots=True)
class Reduction:
    """A percentage off matching items between two dates (inclusive), e.g. Circular 64/2025."""

    name: str
    basis: str  # legal basis, e.g. "64/2025/TT-BTC"
    percent: int
    valid_from: dt.date
    valid_to: dt.date | None
    # "1.000494" (every item of the procedure), "1.000494/LPXD" (one item), or "*" (every item).
    applies_to: tuple[str, ...] = ("*",)
    kinds: tuple[FeeKind, ...] = (FeeKind.PHI, FeeKind.LE_PHI)
    provinces: tuple[str, ...] = (ALL_PROVINCES,)

    def __post_init__(self) -> None:
        if isinstance(self.percent, bool) or not isinstance(self.percent, int) \
                or not 0 < self.percent <= 100:
            raise InvalidInput("a reduction's percent must be an integer from 1 to 100")

    def applies(self, procedure: str, item: FeeItem, on: dt.date, province: str) -> bool:
        if on < self.valid_from or (self.valid_to is not None and on > self.valid_to):
            return False
        if item.kind not in self.kinds:
            return False
        if ALL_PROVINCES not in self.provinces and province not in self.provinces:
            return False
        return any(t in ("*", procedure, f"{procedure}/{item.code}") for t in self.applies_to)

    def reduce(self, amount: int) -> int:
        """The amount after the reduction, rounded half-up to the đồng."""
        return amount - (amount * self.percent * 2 + 100) // 200


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One priced item of a quote: the base amount, and the amount after reductions and quantity."""
    item_code: str
    name: str
    kind: FeeKind
    collector: str
    base_amount: int
    amount: int  # after reductions, times quantity
    quantity: int = 1
    reductions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    """What a dossier costs on a date in a province: one line per fee item, and the total."""
    procedure_code: str
    procedure_name: str
    on: dt.date
    province: str
    lines: tuple[QuoteLine, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    def by_kind(self) -> dict[FeeKind, int]:
        out: dict[FeeKind, int] = {}
        for line in self.lines:
            out[line.kind] = out.get(line.kind, 0) + line.amount
        return out


@dataclass(frozen=True)
class FeeCatalogue:
    """The fees and charges of every administrative procedure, with the reductions that apply; ``quote``
    prices a dossier from it."""
    procedures: Mapping[str, Procedure] = field(default_factory=dict)
    reductions: tuple[Reduction, ...] = ()

    @classmethod
    def of(cls, procedures: Iterable[Procedure], reductions: Sequence[Reduction] = ()
           ) -> FeeCatalogue:
        table: dict[str, Procedure] = {}
        for p in procedures:
            if p.code in table:
                raise InvalidInput(f"procedure {p.code} is defined twice")
            table[p.code] = p
        return cls(table, tuple(reductions))

    def merged(self, other: FeeCatalogue) -> FeeCatalogue:
        return FeeCatalogue.of([*self.procedures.values(), *other.procedures.values()],
                               [*self.reductions, *other.reductions])

    def procedure(self, code: str) -> Procedure:
        national = ProcedureCode.parse(code).national
        found = self.procedures.get(national)
        if found is None:
            raise UnknownProcedure("the fee catalogue has no such procedure",
                                   metadata={"procedure_code": code})
        return found


def quote(catalogue: FeeCatalogue, procedure_code: str, *, on: dt.date, province: str,
          quantities: Mapping[str, int] | None = None) -> Quote:
    """What a dossier for ``procedure_code`` costs on ``on`` in ``province``: a pure function.

    ``quantities`` multiplies items (e.g. copies); an item without a level in force that day is
    left out; a procedure with no item in force at all is ``UnknownProcedure``.
    """
    if not _PROVINCE.fullmatch(province):
        raise InvalidInput("province must be a 2-digit code", metadata={"field": "province"})
    procedure = catalogue.procedure(procedure_code)
    quantities = quantities or {}
    for code, qty in quantities.items():
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise InvalidInput(f"quantity of {code} must be a non-negative integer")
    lines: list[QuoteLine] = []
    for item in procedure.items:
        qty = quantities.get(item.code, 1)
        level = item.level_on(on, province)
        if level is None or qty == 0:
            continue
        amount, applied = level.amount, []
        for reduction in catalogue.reductions:
            if reduction.applies(procedure.code, item, on, province):
                amount = reduction.reduce(amount)
                applied.append(f"{reduction.name} ({reduction.basis})")
        lines.append(QuoteLine(item.code, item.name, item.kind, item.collector, level.amount,
                               amount * qty, qty, tuple(applied)))
    if not lines:
        raise UnknownProcedure("no fee of this procedure is in force on that date",
                               metadata={"procedure_code": procedure_code})
    return Quote(procedure.code, procedure.name, on, province, tuple(lines))
