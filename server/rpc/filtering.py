"""A small subset of AIP-160 filters: ``field op value`` conditions joined by ``AND``.

Values are double-quoted strings (with ``\\"`` and ``\\\\`` escapes) or bare tokens; operators are
``= != < <= > >=``. Each list method says which fields it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from server.errors import InvalidArgument

__all__ = ["Condition", "parse_filter"]

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>)|(?P<word>[A-Za-z0-9_.:+\-/]+))'
)
OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_FILTER", metadata={"field": "filter"})


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _bad(f"unexpected character at position {pos} of the filter")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


def parse_filter(text: str, fields: Collection[str]) -> list[Condition]:
    """Parse ``text``; raises INVALID_ARGUMENT (reason INVALID_FILTER) naming what is wrong."""
    if len(text) > 2000:
        raise _bad("filter is too long")
    tokens = _tokens(text)
    conditions: list[Condition] = []
    i = 0
    while i < len(tokens):
        if conditions:
            if tokens[i] != ("word", "AND"):
                raise _bad("conditions must be joined by AND")
            i += 1
        if i + 3 > len(tokens):
            raise _bad("incomplete condition at the end of the filter")
        (k1, name), (k2, op), (k3, value) = tokens[i:i + 3]
        if k1 != "word" or name not in fields:
            raise _bad(f"unknown filter field {name!r} (allowed: {', '.join(sorted(fields))})")
        if k2 != "op" or op not in OPERATORS:
            raise _bad(f"expected an operator after {name!r}")
        if k3 not in {"string", "word"}:
            raise _bad(f"expected a value after {name} {op}")
        conditions.append(Condition(name, op, value))
        i += 3
    return conditions
