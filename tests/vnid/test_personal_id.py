from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.vn import mst

from vnid.personal_id import (
    BIRTH_PROVINCE_CODES,
    InvalidPersonalId,
    InvalidTaxCode,
    PersonalIdRules,
    Sex,
    check_personal_id,
    parse_personal_id,
    validate_tax_code,
)
from vnid.units import FORMER_PROVINCES


def test_birth_codes_are_the_63_former_provinces_in_three_digits() -> None:
    assert len(BIRTH_PROVINCE_CODES) == 63 == len(FORMER_PROVINCES)
    assert BIRTH_PROVINCE_CODES["001"] == "Hà Nội" and BIRTH_PROVINCE_CODES["096"] == "Cà Mau"
    assert BIRTH_PROVINCE_CODES["087"] == "Đồng Tháp" and "003" not in BIRTH_PROVINCE_CODES


def test_domain_example_dong_thap_male_1984() -> None:
    pid = check_personal_id("087084000999", date_of_birth=dt.date(1984, 3, 1), sex=Sex.MALE)
    assert (pid.birth_place, pid.sex, pid.birth_year) == ("Đồng Tháp", Sex.MALE, 1984)
    assert pid.former_province_code == "87" and not pid.born_abroad


@pytest.mark.parametrize("g,year,sex", [
    ("0", 1984, Sex.MALE), ("1", 1984, Sex.FEMALE), ("2", 2004, Sex.MALE),
    ("3", 2004, Sex.FEMALE), ("4", 2104, Sex.MALE), ("5", 2104, Sex.FEMALE),
    ("6", 2204, Sex.MALE), ("9", 2304, Sex.FEMALE),
])
def test_century_and_sex_digit(g: str, year: int, sex: Sex) -> None:
    number = f"079{g}{year % 100:02d}000123"
    pid = parse_personal_id(number)
    assert (pid.birth_year, pid.sex) == (year, sex)
    check_personal_id(number, date_of_birth=dt.date(year, 1, 2), sex=sex)


@pytest.mark.parametrize("number,born,sex", [
    ("079084000123", dt.date(1985, 1, 1), Sex.MALE),  # year
    ("079084000123", dt.date(2084, 1, 1), Sex.MALE),  # century
    ("079084000123", dt.date(1984, 1, 1), Sex.FEMALE),  # sex
    ("079184000123", dt.date(1984, 1, 1), Sex.MALE),  # sex digit
])
def test_number_must_agree_with_the_person(number: str, born: dt.date, sex: Sex) -> None:
    with pytest.raises(InvalidPersonalId):
        check_personal_id(number, date_of_birth=born, sex=sex)


@pytest.mark.parametrize("number", ["07908400012", "0790840001234", "07908400012a", "",
                                    "003084000123", "099084000123", "１２３４５６７８９０１２"])
def test_malformed_or_unknown_place(number: str) -> None:
    with pytest.raises(InvalidPersonalId):
        parse_personal_id(number)


def test_births_abroad_use_configured_country_codes() -> None:
    with pytest.raises(InvalidPersonalId):
        parse_personal_id("704084000123")
    rules = PersonalIdRules.from_config({"birth_abroad_codes": {"704": "Ví dụ (cấu hình)"}})
    pid = parse_personal_id("704084000123", rules)
    assert pid.born_abroad and pid.former_province_code is None
    with pytest.raises(Exception, match="province code"):
        PersonalIdRules.from_config({"birth_abroad_codes": {"079": "clash"}})


@given(st.integers(min_value=1, max_value=99), st.integers(min_value=1, max_value=9_999_999))
def test_tax_code_check_digit_agrees_with_python_stdnum(province: int, serial: int) -> None:
    body = f"{province:02d}{serial:07d}"
    for check in "0123456789":
        code = body + check
        ours = _valid(code)
        assert ours == mst.is_valid(code), code


def _valid(code: str) -> bool:
    try:
        validate_tax_code(code)
        return True
    except InvalidTaxCode:
        return False


def test_branch_tax_codes() -> None:
    assert validate_tax_code("0314409058-002") == "0314409058002"
    with pytest.raises(InvalidTaxCode):
        validate_tax_code("0314409058-000")
    with pytest.raises(InvalidTaxCode):
        validate_tax_code("0100233480")
