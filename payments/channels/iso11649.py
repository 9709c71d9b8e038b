"""ISO 11649 structured creditor references (``RF`` + 2 check digits + up to 21 characters).

The check digits are ISO 7064 MOD 97-10 over the reference with ``RF00`` moved to the end and
letters as numbers (A=10 ... Z=35), as for IBANs: a valid reference gives remainder 1. They catch
every single-digit error and almost every other single-character error or transposition (a
random change passes with a chance of about 1 in 97), which is what lets reconciliation tell a
payer's typo (an invalid reference one edit away from exactly one of ours) from a stranger's
transfer (a valid reference that is not ours, or no reference at all).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator

from payments.errors import InvalidReference

__all__ = [
    "COMPACT_REFERENCE",
    "REFERENCE_PATTERN",
    "corrections",
    "create_reference",
    "find_references",
    "is_valid_reference",
    "valid_neighbours",
    "validate_reference",
]

_ALNUM = string.digits + string.ascii_uppercase
_BODY = re.compile(r"^[0-9A-Z]{1,21}$")
REFERENCE_PATTERN = re.compile(r"RF\d{2}[0-9A-Z]{1,21}")
# In free text: compact, or printed in groups of four ("RF18 5390 0754 7034").
COMPACT_REFERENCE = _COMPACT = re.compile(r"(?<![0-9A-Z])RF\d{2}[0-9A-Z]{1,21}(?![0-9A-Z])")
_SPACED = re.compile(r"(?<![0-9A-Z])RF\d{2}(?: [0-9A-Z]{4}){1,5}(?: [0-9A-Z]{1,4})?(?![0-9A-Z])")


_TO_DIGITS = str.maketrans({c: str(i) for i, c in enumerate(_ALNUM)})


def _numeric(text: str) -> int:
    return int(text.translate(_TO_DIGITS))


def create_reference(body: str) -> str:
    """``RF`` + check digits + ``body`` (1-21 characters of 0-9 A-Z)."""
    body = body.upper()
    if not _BODY.fullmatch(body):
        raise InvalidReference("a creditor reference body is 1-21 characters of 0-9 A-Z")
    check = 98 - _numeric(body + "RF00") % 97
    return f"RF{check:02d}{body}"


def is_valid_reference(reference: str) -> bool:
    """Whether ``reference`` is an ISO 11649 creditor reference (``RF`` and valid check digits), spaces and
    case ignored."""
    ref = reference.replace(" ", "").upper()
    if not REFERENCE_PATTERN.fullmatch(ref):
        return False
    return _numeric(ref[4:] + ref[:4]) % 97 == 1


def validate_reference(reference: str) -> str:
    """``reference`` normalised (no spaces, upper case) if it is a valid ISO 11649 creditor reference;
    :class:`InvalidReference` otherwise."""
    ref = reference.replace(" ", "").upper()
    if not is_valid_reference(ref):
        raise InvalidReference("not a valid ISO 11649 creditor reference")
    return ref


def find_references(text: str) -> list[str]:
    """RF-shaped tokens in free text, valid or not, in order of appearance; a reference printed
    in groups of four counts when its groups together are valid."""
    upper = text.upper()
    found = [m.group(0) for m in _COMPACT.finditer(upper)]
    if " " not in upper:
        return found
    for m in _SPACED.finditer(upper):
        joined = m.group(0).replace(" ", "")
        if joined not in found and is_valid_reference(joined):
            found.append(joined)
    return found


def valid_neighbours(reference: str) -> list[str]:
    """Every valid reference one substitution or adjacent transposition away from
    ``reference`` (about 1 in 97 of the candidates survive the check digits)."""
    return list(corrections(reference, lambda _: True))


def corrections(reference: str, known: Callable[[str], bool]) -> Iterator[str]:
    """Valid references one substitution or one adjacent transposition away from ``reference``
    that ``known`` recognises: the candidates for a payer's typo. ``known`` is asked first (a set
    or dict lookup), the check digits only for what it recognises."""
    ref = reference.replace(" ", "").upper()
    found: list[str] = []
    for i in range(2, len(ref) - 1):
        candidate = ref[:i] + ref[i + 1] + ref[i] + ref[i + 2:]
        if candidate != ref and known(candidate):
            found.append(candidate)
    for i in range(2, len(ref)):
        head, tail, current = ref[:i], ref[i + 1:], ref[i]
        for c in string.digits if i < 4 else _ALNUM:
            if c != current and known(head + c + tail):
                found.append(head + c + tail)
    seen: set[str] = set()
    for candidate in found:
        if candidate not in seen and is_valid_reference(candidate):
            seen.add(candidate)
            yield candidate
