"""Personal identification numbers (số định danh cá nhân) and organisation tax codes.

A personal ID number has 12 digits and no check digit (Law on Identification 2023, Art. 12; Circular
59/2021/TT-BCA): ``PPP G YY RRRRRR``

* ``PPP`` — where the birth was registered: the 3-digit form of a pre-merger province code (``001``
  Hà Nội … ``096`` Cà Mau; the list is :data:`vnid.units.FORMER_PROVINCES`, which keeps its 2-digit
  form), or a country code for births registered abroad. The country codes are data supplied by the
  deployment (:class:`PersonalIdRules`), because the official table is not reproduced here.
* ``G`` — century and sex: ``2 × (century − 20) + s`` where ``s`` is 0 for male and 1 for female, so
  1900s male 0 / female 1, 2000s 2 / 3, 2100s 4 / 5, 2200s 6 / 7, 2300s 8 / 9.
* ``YY`` — the last two digits of the year of birth.
* ``RRRRRR`` — a random serial.

Organisations are identified by their tax code (mã số thuế): 10 digits with a weighted check digit,
or 13 digits for a branch (the parent's 10 digits and a 3-digit branch number, often written with a
dash).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from vnid.errors import InvalidInput
from vnid.units import FORMER_PROVINCES

__all__ = [
    "BIRTH_PROVINCE_CODES",
    "InvalidPersonalId",
    "InvalidTaxCode",
    "PersonalId",
    "PersonalIdRules",
    "Sex",
    "check_personal_id",
    "parse_personal_id",
    "validate_tax_code",
]


class InvalidPersonalId(InvalidInput):
    """The 12-digit personal identification number is malformed or contradicts the person's data."""

    reason = "INVALID_PERSONAL_ID"


class InvalidTaxCode(InvalidInput):
    """The organisation's tax code (mã số thuế) is malformed or its check digit is wrong."""

    reason = "INVALID_TAX_CODE"


_DIGITS12 = re.compile(r"^\d{12}$")

# Birth-registration codes of the 63 pre-merger provinces in their 3-digit form: "001" -> "Hà Nội".
BIRTH_PROVINCE_CODES: Mapping[str, str] = MappingProxyType(
    {"0" + code: name for code, (name, _successor) in FORMER_PROVINCES.items()}
)


class Sex(StrEnum):
    """Sex as the personal identification number encodes it."""
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True)
class PersonalIdRules:
    """Which birth-registration codes exist. The province codes are fixed; the codes used for births
    registered abroad (``birth_abroad_codes``: code -> country name) are configured as data."""

    birth_abroad_codes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for code in self.birth_abroad_codes:
            if not re.fullmatch(r"\d{3}", code) or code in BIRTH_PROVINCE_CODES:
                raise InvalidInput(
                    f"birth-abroad code {code!r} must be 3 digits and not a province code",
                    reason="INVALID_SETTING")

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> PersonalIdRules:
        unknown = set(data) - {"birth_abroad_codes"}
        if unknown:
            raise InvalidInput(f"unknown personal_id setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        codes = {str(k): str(v) for k, v in dict(data.get("birth_abroad_codes", {})).items()}
        return cls(birth_abroad_codes=MappingProxyType(codes))

    def birth_place(self, code: str) -> str | None:
        return BIRTH_PROVINCE_CODES.get(code) or self.birth_abroad_codes.get(code)


DEFAULT_RULES = PersonalIdRules()


@dataclass(frozen=True, slots=True)
class PersonalId:
    """A 12-digit personal identification number and what it encodes: the place of birth registration, sex,
    century and year of birth."""
    number: str
    birth_place_code: str
    birth_place: str
    born_abroad: bool
    sex: Sex
    century: int  # 19 for the 1900s, 20 for the 2000s, ...
    year_suffix: int  # YY

    @property
    def birth_year(self) -> int:
        return self.century * 100 + self.year_suffix

    @property
    def former_province_code(self) -> str | None:
        """The 2-digit pre-merger province code, for numbers registered in Vietnam."""
        return None if self.born_abroad else self.birth_place_code[1:]


def parse_personal_id(number: str, rules: PersonalIdRules = DEFAULT_RULES) -> PersonalId:
    """Check the form of a personal ID number and decode it; raises :class:`InvalidPersonalId`."""
    if not isinstance(number, str) or not _DIGITS12.fullmatch(number):
        raise InvalidPersonalId("a personal ID number has exactly 12 digits")
    place_code = number[:3]
    place = rules.birth_place(place_code)
    if place is None:
        raise InvalidPersonalId("the first three digits are not a known birth-registration code",
                                metadata={"birth_place_code": place_code})
    g = int(number[3])
    return PersonalId(
        number=number,
        birth_place_code=place_code,
        birth_place=place,
        born_abroad=place_code not in BIRTH_PROVINCE_CODES,
        sex=Sex.FEMALE if g % 2 else Sex.MALE,
        century=20 + g // 2 - 1,
        year_suffix=int(number[4:6]),
    )


def check_personal_id(number: str, *, date_of_birth: dt.date, sex: Sex,
                      rules: PersonalIdRules = DEFAULT_RULES) -> PersonalId:
    """Decode ``number`` and check that it agrees with the person's date of birth and sex."""
    pid = parse_personal_id(number, rules)
    if pid.birth_year != date_of_birth.year:
        raise InvalidPersonalId("the century digit and birth year do not match the date of birth")
    if pid.sex != sex:
        raise InvalidPersonalId("the century/sex digit does not match the person's sex")
    return pid


_TAX_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)


def validate_tax_code(code: str) -> str:
    """Return the compact form (10 or 13 digits) of a valid organisation tax code, else raise."""
    compact = re.sub(r"[\s.\-]", "", code or "")
    if len(compact) not in (10, 13) or not compact.isdigit():
        raise InvalidTaxCode("a tax code has 10 digits, or 13 for a branch")
    if compact[2:9] == "0000000" or (len(compact) == 13 and compact[10:] == "000"):
        raise InvalidTaxCode("the tax code's serial or branch number is zero")
    check = 10 - sum(w * int(d) for w, d in zip(_TAX_WEIGHTS, compact, strict=False)) % 11
    if str(check) != compact[9]:
        raise InvalidTaxCode("the tax code's check digit is wrong")
    return compact
