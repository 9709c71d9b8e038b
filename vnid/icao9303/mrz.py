"""The machine-readable zone of a TD1 card (ICAO 9303 part 5), as stored in DG1.

A TD1 zone has three lines of 30 characters. Each numeric field is followed by a check digit
computed with weights 7, 3, 1 over the field (digits count as their value, letters A-Z as 10-35,
the filler ``<`` as 0); the composite check digit at the end of line 2 covers the document number
with its check digit and optional data of line 1, the date of birth, the expiry date and the
optional data of line 2, each with their check digits.

On the Vietnamese chip ID card (căn cước) the document number is the last nine digits of the
12-digit personal ID number and line 1's optional data starts with the full 12-digit number (an
observation from published specimens, not a published rule; :func:`parse_td1` returns the optional
data as read and :attr:`Td1.personal_id` takes the first 12 digits when they are digits).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vnid.errors import InvalidInput

__all__ = ["InvalidMrz", "Td1", "check_digit", "parse_td1"]


class InvalidMrz(InvalidInput):
    """The machine-readable zone is malformed or one of its check digits is wrong."""

    reason = "MRZ_INVALID"


_WEIGHTS = (7, 3, 1)


def _value(ch: str) -> int:
    if ch.isdigit():
        return int(ch)
    if "A" <= ch <= "Z":
        return ord(ch) - ord("A") + 10
    if ch == "<":
        return 0
    raise InvalidMrz(f"character {ch!r} is not allowed in a machine-readable zone")


def check_digit(field: str) -> str:
    """The ICAO 9303 check digit of ``field`` (weights 7, 3, 1; modulo 10)."""
    return str(sum(_value(ch) * _WEIGHTS[i % 3] for i, ch in enumerate(field)) % 10)


@dataclass(frozen=True, slots=True)
class Td1:
    """A parsed and checked TD1 machine-readable zone."""

    document_code: str
    issuing_state: str
    document_number: str
    optional_data_1: str
    date_of_birth: dt.date
    sex: str  # "M", "F" or "<" (unspecified)
    date_of_expiry: dt.date
    nationality: str
    optional_data_2: str
    primary_identifier: str  # surname part of the name, spaces for fillers
    secondary_identifier: str  # given names

    @property
    def personal_id(self) -> str | None:
        """The 12-digit personal ID number carried in line 1's optional data, when present."""
        head = self.optional_data_1[:12]
        return head if len(head) == 12 and head.isdigit() else None

    @property
    def name(self) -> str:
        """The name as the zone spells it: primary then secondary identifier."""
        return " ".join(p for p in (self.primary_identifier, self.secondary_identifier) if p)


def _date(text: str, *, future: bool, what: str) -> dt.date:
    if not text.isdigit() or len(text) != 6:
        raise InvalidMrz(f"{what} {text!r} is not YYMMDD")
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    # Birth dates are in the past (a year after this year's two digits is last century);
    # expiry dates of an identity card lie within the next hundred years.
    this = dt.date.today().year % 100
    if future:
        century = 2000
    else:
        century = 1900 if yy > this else 2000
    try:
        return dt.date(century + yy, mm, dd)
    except ValueError:
        raise InvalidMrz(f"{what} {text!r} is not a date") from None


def _check(field: str, digit: str, what: str) -> None:
    if check_digit(field) != digit:
        raise InvalidMrz(f"the check digit of the {what} is wrong",
                         metadata={"field": what})


def parse_td1(zone: str) -> Td1:
    """Parse a TD1 zone (three lines of 30 characters, with or without line breaks) and verify
    every check digit. Raises :class:`InvalidMrz` naming the field that fails."""
    text = "".join(zone.split())
    if len(text) != 90:
        raise InvalidMrz(f"a TD1 zone has 90 characters, this one {len(text)}")
    for ch in text:
        _value(ch)
    l1, l2, l3 = text[:30], text[30:60], text[60:]
    number, number_cd, opt1 = l1[5:14], l1[14], l1[15:30]
    dob, dob_cd, sex, exp, exp_cd = l2[0:6], l2[6], l2[7], l2[8:14], l2[14]
    nationality, opt2, composite = l2[15:18], l2[18:29], l2[29]
    _check(number, number_cd, "document number")
    _check(dob, dob_cd, "date of birth")
    _check(exp, exp_cd, "date of expiry")
    _check(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], composite, "composite")
    if sex not in "MF<":
        raise InvalidMrz(f"sex {sex!r} is not M, F or <")
    primary, _, secondary = l3.partition("<<")
    return Td1(
        document_code=l1[0:2].rstrip("<"),
        issuing_state=l1[2:5],
        document_number=number.rstrip("<"),
        optional_data_1=opt1.rstrip("<"),
        date_of_birth=_date(dob, future=False, what="date of birth"),
        sex=sex,
        date_of_expiry=_date(exp, future=True, what="date of expiry"),
        nationality=nationality,
        optional_data_2=opt2.rstrip("<"),
        primary_identifier=primary.replace("<", " ").strip(),
        secondary_identifier=secondary.replace("<", " ").strip(),
    )
