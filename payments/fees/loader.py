"""Load a fee catalogue from YAML or CSV bytes; every validation error names the line.

YAML::

    procedures:
      - code: "1.000494"
        name: Cấp giấy phép xây dựng
        items:
          - code: LPXD
            name: Lệ phí cấp giấy phép xây dựng
            kind: le_phi                # or phi
            collector: "000.00.00.H29"  # optional: the collecting body
            levels:
              - {amount: 150000, from: 2017-01-01}
              - {amount: 75000, from: 2025-07-01, to: 2026-12-31, province: "79"}
    reductions:
      - name: Giảm 50%
        basis: 64/2025/TT-BTC
        percent: 50
        from: 2025-07-01
        to: 2026-12-31
        applies_to: ["1.000494"]        # procedure, "procedure/item", or "*"
        kinds: [le_phi]                 # optional
        provinces: ["*"]                # optional

CSV (one fee level per row, header required)::

    procedure_code,procedure_name,item_code,item_name,kind,amount,valid_from,valid_to,province,collector
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from payments.errors import CatalogueError, PaymentsError
from payments.fees.catalogue import (
    ALL_PROVINCES,
    FeeCatalogue,
    FeeItem,
    FeeKind,
    FeeLevel,
    Procedure,
    ProcedureCode,
    Reduction,
)

__all__ = ["CSV_COLUMNS", "load_catalogue_csv", "load_catalogue_yaml"]

CSV_COLUMNS = ("procedure_code", "procedure_name", "item_code", "item_name", "kind", "amount",
               "valid_from", "valid_to", "province", "collector")
T = TypeVar("T")


class _Map(dict[str, Any]):
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings remember the (1-based) line they start on."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise CatalogueError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _field(row: Mapping[str, Any], name: str, line: int, convert: Callable[[Any], T],
           *, required: bool = True, default: T | None = None) -> T:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise CatalogueError(f"'{name}' is missing", line=line)
        return default  # type: ignore[return-value]
    try:
        return convert(value)
    except CatalogueError:
        raise
    except (PaymentsError, ValueError, TypeError) as exc:
        detail = exc.message if isinstance(exc, PaymentsError) else str(exc)
        raise CatalogueError(f"'{name}' is invalid: {detail}", line=line) from None


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError("expected a date, not a date-time")
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def _amount(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("amounts are whole đồng written as integers")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError("amounts are whole đồng written as integers")
    return int(text)


def _text(value: Any) -> str:
    if not isinstance(value, str | int):
        raise ValueError("expected text")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _procedure_code(value: Any) -> str:
    code = ProcedureCode.parse(str(value))
    if code.agency or code.variant:
        raise ValueError("the catalogue is keyed by the national code (e.g. 1.000494)")
    return code.national


def _province(value: Any) -> str:
    text = str(value).strip()
    if text != ALL_PROVINCES and not (len(text) == 2 and text.isdigit()):
        raise ValueError("a 2-digit province code or '*'")
    return text


def _known_keys(row: _Map, allowed: set[str], what: str) -> None:
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise CatalogueError(f"unknown key {unknown[0]!r} in {what}", line=row.line)


def _list(value: Any, line: int, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CatalogueError(f"{what} must be a list", line=line)
    return value


def _mapping(value: Any, line: int, what: str) -> _Map:
    if not isinstance(value, _Map):
        raise CatalogueError(f"each {what} must be a mapping", line=line)
    return value


def load_catalogue_yaml(data: bytes, *, source: str = "") -> FeeCatalogue:
    """Parse and validate a YAML catalogue; raises ``CatalogueError`` naming the line."""
    try:
        doc = yaml.load(data.decode("utf-8"), Loader=_LineLoader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError:
        raise CatalogueError("the file is not UTF-8", source=source) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise CatalogueError(f"not valid YAML: {exc.problem}", line=line, source=source) from None
    except CatalogueError as exc:
        raise CatalogueError(exc.message.split(": ", 1)[-1], line=exc.line,
                             source=source) from None
    try:
        return _from_doc(doc)
    except CatalogueError as exc:
        if source:
            raise CatalogueError(exc.message.split(": ", 1)[-1] if exc.line else exc.message,
                                 line=exc.line, source=source) from None
        raise


def _from_doc(doc: Any) -> FeeCatalogue:
    root = _mapping(doc, 1, "catalogue")
    _known_keys(root, {"procedures", "reductions"}, "the catalogue")
    procedures: list[Procedure] = []
    seen: dict[str, int] = {}
    for raw in _list(root.get("procedures", []), root.line, "procedures"):
        p = _mapping(raw, root.line, "procedure")
        _known_keys(p, {"code", "name", "items"}, "a procedure")
        code = _field(p, "code", p.line, _procedure_code)
        if code in seen:
            raise CatalogueError(f"procedure {code} is already defined on line {seen[code]}",
                                 line=p.line)
        seen[code] = p.line
        items: list[FeeItem] = []
        item_codes: set[str] = set()
        for raw_item in _list(p.get("items", []), p.line, "items"):
            it = _mapping(raw_item, p.line, "item")
            _known_keys(it, {"code", "name", "kind", "collector", "levels"}, "an item")
            item_code = _field(it, "code", it.line, _text)
            if item_code in item_codes:
                raise CatalogueError(f"item {item_code} appears twice in {code}", line=it.line)
            item_codes.add(item_code)
            levels: list[FeeLevel] = []
            for raw_level in _list(it.get("levels", []), it.line, "levels"):
                lv = _mapping(raw_level, it.line, "level")
                _known_keys(lv, {"amount", "from", "to", "province"}, "a level")
                levels.append(_level(lv, lv.line))
            if not levels:
                raise CatalogueError(f"item {item_code} has no levels", line=it.line)
            _check_overlaps(levels, it.line)
            items.append(FeeItem(item_code, _field(it, "name", it.line, _text),
                                 _field(it, "kind", it.line, FeeKind),
                                 tuple(levels), _field(it, "collector", it.line, _text,
                                                       required=False, default="")))
        procedures.append(Procedure(code, _field(p, "name", p.line, _text), tuple(items)))
    reductions = []
    for raw in _list(root.get("reductions", []), root.line, "reductions"):
        r = _mapping(raw, root.line, "reduction")
        _known_keys(r, {"name", "basis", "percent", "from", "to", "applies_to", "kinds",
                        "provinces"}, "a reduction")
        try:
            reductions.append(Reduction(
                name=_field(r, "name", r.line, _text), basis=_field(r, "basis", r.line, _text),
                percent=_field(r, "percent", r.line, _amount),
                valid_from=_field(r, "from", r.line, _date),
                valid_to=_field(r, "to", r.line, _date, required=False),
                applies_to=tuple(_field(r, "applies_to", r.line, lambda v: [
                    str(x) for x in v], required=False, default=["*"])),
                kinds=tuple(_field(r, "kinds", r.line, lambda v: [FeeKind(x) for x in v],
                                   required=False, default=[FeeKind.PHI, FeeKind.LE_PHI])),
                provinces=tuple(_field(r, "provinces", r.line, lambda v: [
                    _province(x) for x in v], required=False, default=[ALL_PROVINCES])),
            ))
        except PaymentsError as exc:
            if isinstance(exc, CatalogueError):
                raise
            raise CatalogueError(exc.message, line=r.line) from None
    return FeeCatalogue.of(procedures, reductions)


def _level(row: Mapping[str, Any], line: int, *, from_key: str = "from", to_key: str = "to"
           ) -> FeeLevel:
    amount = _field(row, "amount", line, _amount)
    start = _field(row, from_key, line, _date)
    end = _field(row, to_key, line, _date, required=False)
    province = _field(row, "province", line, _province, required=False, default=ALL_PROVINCES)
    try:
        return FeeLevel(amount, start, end, province)
    except PaymentsError as exc:
        raise CatalogueError(exc.message, line=line) from None


def _check_overlaps(levels: list[FeeLevel], line: int) -> None:
    """Two levels of one item for the same province starting on the same day are ambiguous."""
    keys: set[tuple[str, dt.date]] = set()
    for lv in levels:
        key = (lv.province, lv.valid_from)
        if key in keys:
            raise CatalogueError(f"two levels start on {lv.valid_from} for province "
                                 f"{lv.province}", line=line)
        keys.add(key)


def load_catalogue_csv(data: bytes, *, source: str = "") -> FeeCatalogue:
    """Parse a CSV catalogue (header row :data:`CSV_COLUMNS`; ``valid_to``, ``province`` and
    ``collector`` may be empty). Reductions are not expressible in CSV: merge a YAML file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CatalogueError("the file is not UTF-8", source=source) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise CatalogueError(f"missing column {missing[0]!r}", line=1, source=source)
    extra = [c for c in header if c not in CSV_COLUMNS]
    if extra:
        raise CatalogueError(f"unknown column {extra[0]!r}", line=1, source=source)
    names: dict[str, str] = {}
    items: dict[str, dict[str, tuple[str, FeeKind, str, list[FeeLevel], int]]] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise CatalogueError("the row has more fields than the header", line=line)
            code = _field(row, "procedure_code", line, _procedure_code)
            name = _field(row, "procedure_name", line, _text)
            if names.setdefault(code, name) != name:
                raise CatalogueError(f"procedure {code} has two different names", line=line)
            item_code = _field(row, "item_code", line, _text)
            item_name = _field(row, "item_name", line, _text)
            kind = _field(row, "kind", line, FeeKind)
            collector = _field(row, "collector", line, _text, required=False, default="")
            level = _level(row, line, from_key="valid_from", to_key="valid_to")
            entry = items.setdefault(code, {}).setdefault(
                item_code, (item_name, kind, collector, [], line))
            if (entry[0], entry[1], entry[2]) != (item_name, kind, collector):
                raise CatalogueError(f"item {item_code} disagrees with line {entry[4]}",
                                     line=line)
            entry[3].append(level)
            _check_overlaps(entry[3], line)
    except CatalogueError as exc:
        if source:
            raise CatalogueError(exc.message.split(": ", 1)[-1], line=exc.line,
                                 source=source) from None
        raise
    except csv.Error as exc:
        raise CatalogueError(f"not valid CSV: {exc}", line=reader.line_num, source=source) from None
    procedures = [
        Procedure(code, names[code], tuple(
            FeeItem(ic, n, k, tuple(lv), c) for ic, (n, k, c, lv, _) in its.items()))
        for code, its in items.items()
    ]
    return FeeCatalogue.of(procedures)
