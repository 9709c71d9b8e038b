"""Rows created on first use (receipt counters of a new series, outbox rows, throttle and consent
rows) are created race-free: two replicas using one for the first time at once both succeed."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from server.identity.store import SqlTransaction
from server.payments.common import enqueue
from server.payments.receipts_store import _Numbering
from server.storage.db import Database
from server.storage.identity import ConsentRow, ThrottleRow
from server.storage.payments import OutboxRow, ReceiptCounterRow
from vnid.authn.throttle import ThrottleState

pytestmark = pytest.mark.postgres

AT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def race(db: Database, first: Any, second: Any) -> list[Any]:
    """``first`` runs in a transaction that stays open 0.3 s after it; ``second`` runs in another
    transaction meanwhile (it reaches the same new row while the first has not committed)."""
    results: list[Any] = [None, None]
    errors: list[BaseException] = []
    started = threading.Event()

    def one() -> None:
        try:
            with db.write() as s:
                results[0] = first(s)
                started.set()
                time.sleep(0.3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            started.set()

    def two() -> None:
        started.wait(5)
        try:
            with db.write() as s:
                results[1] = second(s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one), threading.Thread(target=two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors
    return results


def test_the_first_receipt_numbers_of_a_new_series_on_two_replicas_at_once(
        postgres_templates: Any) -> None:
    url = postgres_templates.new_database()
    db = Database(url)
    try:
        def take(s: Any) -> tuple[str, int, int]:
            numbering = _Numbering(s, db)
            number = numbering.next("1", AT)
            numbering.flush()
            return number

        first, second = race(db, take, take)
        assert first[2] == 1 and second[2] == 2 and first[:2] == second[:2]
        with db.read() as s:
            assert s.execute(select(ReceiptCounterRow.last_number)).scalars().all() == [2]
    finally:
        db.dispose()
        postgres_templates.drop(url)


def test_outbox_throttle_and_consent_rows_created_at_once(postgres_templates: Any) -> None:
    url = postgres_templates.new_database()
    db = Database(url)
    try:
        race(db, lambda s: enqueue(s, "webhook", "ref-1", {"n": 1}, AT),
             lambda s: enqueue(s, "webhook", "ref-1", {"n": 2}, AT))

        def throttle(failures: int) -> Any:
            return lambda s: SqlTransaction(s, db.dialect).set_throttle(
                "acct:new", ThrottleState(failures, AT, None))

        race(db, throttle(1), throttle(2))

        def consent(scope: str) -> Any:
            return lambda s: SqlTransaction(s, db.dialect).put_consent(
                "acc-1", "client-1", frozenset({"openid", scope}), AT)

        race(db, consent("profile"), consent("national_id"))
        with db.read() as s:
            assert [r.payload for r in s.execute(select(OutboxRow)).scalars()] == ['{"n": 1}']
            assert s.execute(select(ThrottleRow.failures)).scalars().all() == [2]
            assert s.execute(select(ConsentRow.scopes)).scalars().all() == [
                "national_id openid"]
    finally:
        db.dispose()
        postgres_templates.drop(url)
