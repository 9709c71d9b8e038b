"""The data the payments migrations rewrite: statement lines stored under the bare bank reference
get their entry key (re-importing the old statement adds nothing), and existing exceptions and
operations get the agency they belong to."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from payments.reconcile import Statement, StatementLine, write_camt053
from server.payments.recon_store import ReconStore
from server.storage import migrate
from server.storage.db import Database
from tests.payments.support import HCM, T0

ACCOUNT = "113000012345"
DAY = dt.date(2025, 8, 1)


def test_old_rows_are_rekeyed_and_scoped(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate.upgrade(db, "payments_0002")
        with db.engine.begin() as c:
            c.execute(text(
                "INSERT INTO payments_accounts VALUES (:a, '970415', :n, 'UBND', 'bank', '', '', "
                ":t)"), {"a": HCM, "n": ACCOUNT, "t": T0})
            c.execute(text(
                "INSERT INTO payments_statements (account, statement_id, source_sha256, format, "
                "line_count, new_lines, imported_at) VALUES (:n, 'S1', '', 'camt053', 1, 1, :t)"),
                {"n": ACCOUNT, "t": T0})
            c.execute(text(
                "INSERT INTO payments_statement_lines (statement_id, account, key, amount, credit,"
                " booking_date, bank_ref, end_to_end, remittance, counterparty, counter_account,"
                " reconciled) VALUES (1, :n, 'FT1', 77000, 1, :d, 'FT1', '', 'x', '', '', 1)"),
                {"n": ACCOUNT, "d": DAY})
            c.execute(text(
                "INSERT INTO payments_exceptions (source, outcome, account, amount, line_keys, "
                "payment_ids, note, state, resolution, resolved_by, created_at) VALUES "
                "('run1', 'money_without_payment', :n, 77000, 'FT1', '', '', 'open', '', '', :t)"),
                {"n": ACCOUNT, "t": T0})
            c.execute(text(
                "INSERT INTO payments_operations (id, kind, caller, state, progress, total, "
                "result_json, error, created_at) VALUES ('op1', 'reconcile', :c, 'done', 0, 0, "
                "'{}', '', :t)"), {"c": f"{HCM}/dvc-hcm", "t": T0})
        migrate.upgrade(db)
        with db.engine.connect() as c:
            assert c.execute(text("SELECT key FROM payments_statement_lines")).scalar_one() == \
                "FT1/2025-08-01/C/77000"
            assert c.execute(text("SELECT agency_code FROM payments_exceptions")).scalar_one() \
                == HCM
            assert c.execute(text("SELECT agency_code FROM payments_operations")).scalar_one() \
                == HCM
        again = write_camt053([Statement("S1", ACCOUNT, from_date=DAY, to_date=DAY, opening=0,
                                         lines=[
            StatementLine(ACCOUNT, "FT1", 77000, True, DAY, DAY, "FT1", "", "x")])],
            message_id="M", created=T0)
        totals = ReconStore(db, settlement_delay=dt.timedelta(days=2)).import_statement(
            again, fmt="camt053", actor="t", request_id="r", now=T0)
        assert totals["new_lines"] == 0
    finally:
        db.dispose()
