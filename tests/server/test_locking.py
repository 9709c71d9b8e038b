"""The locking discipline: every row lock goes through ``server.storage.locking``, whose reads
under the lock return the row's current values even when the session already holds it."""

from __future__ import annotations

import ast
import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update

from server.storage.db import Database
from server.storage.locking import for_update, locked
from server.storage.payments import CollectionAccountRow

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "payments", "signing", "vnid")
HELPER = ROOT / "server" / "storage" / "locking.py"


def _lock_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "with_for_update"]


def test_no_row_lock_outside_the_helper() -> None:
    """A bare ``with_for_update`` would return the session's stale copy of a row loaded earlier
    in the transaction (the bug that lost a concurrent transfer's money on PostgreSQL)."""
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
                 if path != HELPER for line in _lock_calls(path)]
    assert offenders == []
    assert _lock_calls(HELPER)  # the checker does see the one place that may lock


def test_the_lint_sees_a_bare_lock(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(s, stmt):\n    return s.execute(stmt.with_for_update())\n")
    assert _lock_calls(bad) == [2]


def _account(name: str) -> CollectionAccountRow:
    return CollectionAccountRow(agency_code="000.00.00.H29", bank_bin="970415",
                                account_number="113000012345", account_name=name,
                                kind="revenue", treasury_office_code="0111",
                                budget_unit_code="1234567",
                                updated_at=dt.datetime(2025, 8, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("how", ["for_update", "locked"])
def test_a_locked_read_sees_what_a_concurrent_writer_committed(db: Database, how: str) -> None:
    """The session loads a row, another transaction changes it and commits, then the session
    locks the row: the values it computes from are the committed ones, not the ones it read
    first. Without ``populate_existing`` the identity map would hand back the stale object."""
    with db.write() as s:
        s.add(_account("before"))
    changed = threading.Event()

    def other_writer() -> None:
        with db.write() as s:
            s.execute(update(CollectionAccountRow).values(account_name="after"))
        changed.set()

    with db.write() as s:
        first = s.execute(select(CollectionAccountRow)).scalar_one()
        assert first.account_name == "before"
        if db.is_sqlite:
            # One writer at a time: the other writer has to wait for this transaction, so the
            # row cannot change under it; it is current when locked, trivially.
            again = for_update(s, CollectionAccountRow, "000.00.00.H29")
            assert again is first and again.account_name == "before"
            return
        # On PostgreSQL the first read took no lock: another transaction commits a change.
        thread = threading.Thread(target=other_writer)
        thread.start()
        assert changed.wait(10)
        thread.join()
        if how == "for_update":
            again = for_update(s, CollectionAccountRow, "000.00.00.H29")
        else:
            again = s.execute(locked(select(CollectionAccountRow))).scalar_one()
        assert again is first  # the same object, refreshed
        assert again is not None and again.account_name == "after"
        # What the bare lock did: the same query without populate_existing keeps the stale copy.
    with db.write() as s:
        stale = s.execute(select(CollectionAccountRow)).scalar_one()
        s.execute(update(CollectionAccountRow).values(account_name="third")
                  .execution_options(synchronize_session=False))
        bare = s.execute(select(CollectionAccountRow).with_for_update()).scalar_one()
        assert bare is stale and bare.account_name == "after"  # stale: the row says "third"
        fresh = for_update(s, CollectionAccountRow, "000.00.00.H29")
        assert fresh is stale and fresh.account_name == "third"
