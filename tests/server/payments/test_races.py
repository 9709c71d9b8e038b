"""Different concurrent events against one payment, on SQLite and PostgreSQL (see ``races``),
each run ending with the per-payment invariants proved; and the callback storm on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import func, select

from payments.payments import PaymentState
from server.cli import main
from server.payments.checks import check_database
from server.payments.common import trial_balance
from server.payments.store import ConfirmOutcome
from server.storage.db import Database
from server.storage.payments import ChannelEventRow, PaymentRow, TransitionRow
from tests.payments.support import T0
from tests.server.payments.conftest import World, make_world
from tests.server.payments.races import RACES, Race, new_payment, run_race
from tests.server.payments.test_server import payments_section
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki

ROUNDS = 3
S = PaymentState


def _after(world: World, pid: str) -> tuple[S, int, int, int]:
    p = world.payments.get(pid)
    return p.state, p.collected, p.refunded, p.held


# What each race must leave, beyond the invariants: (state, collected, refunded, held) given
# the amount due and the two events' outcomes.
EXPECT: dict[str, Callable[[int, list[str], tuple[S, int, int, int]], bool]] = {
    "two transfers": lambda due, _, a: a == (S.PAID, due, 0, 0),
    # Money for a paid payment is held as an exception, not credited.
    "two full transfers": lambda due, o, a: (
        sorted(o) == ["applied", "held"] and a == (S.PAID, due, 0, 0)),
    "transfer and refund": lambda due, o, a: (
        o[0] == "held" and a == (S.PARTIALLY_REFUNDED, due, due // 2, 0)),
    "transfer and expiry": lambda due, o, a: (
        a == (S.PAID, due, 0, 0) if o[0] == "applied" else a[0] is S.EXPIRED and o[0] == "held"),
    "transfer and cancel": lambda due, o, a: (
        a[0] is S.CANCELLED and a[1] in (0, due) if o[1] == "done" else a[0] is S.PAID),
    "transfer and resolution": lambda due, _, a: a[:2] == (S.OVERPAID, due + due // 3),
    "two resolutions": lambda due, _, a: a[:2] == (S.PARTIALLY_PAID, 2 * (due // 3)),
    "one resolution twice": lambda due, o, a: (
        sorted(o) == ["FailedPrecondition", "done"] and a[:2] == (S.PARTIALLY_PAID, due // 3)),
    "refund and refund": lambda due, o, a: (
        sorted(o) == ["RefundExceedsCollected", "done"] and a[2] == due),
}


@pytest.mark.parametrize("race", RACES, ids=[r.name for r in RACES])
def test_two_different_events_on_one_payment(world: World, race: Race) -> None:
    seen: Counter[tuple[str, ...]] = Counter()
    for _ in range(ROUNDS):
        pid, outcomes = run_race(world, race)
        due = world.payments.get(pid).amount_due
        after = _after(world, pid)
        assert EXPECT[race.name](due, outcomes, after), (race.name, outcomes, after)
        seen[tuple(outcomes)] += 1
    assert check_database(world.db) == []


def test_the_harness_catches_a_lost_transfer(world: World) -> None:
    """The checker the races end with names a payment whose second transfer was recorded but
    not counted (what happened on PostgreSQL before the locking fix)."""
    from sqlalchemy import update

    pid, due = new_payment(world)
    p = world.payments.get(pid)
    for tx in ("TXA", "TXB"):
        world.payments.confirm(channel="vietqr", transaction_id=tx, reference=p.reference,
                               amount=due // 2, at=T0, success=True, exact_amount=False,
                               request_id="r", now=T0)
    with world.db.write() as s:  # the lost update: the row counts only one of the two
        s.execute(update(PaymentRow).where(PaymentRow.id == pid).values(
            collected=due // 2, state="partially_paid"))
    with world.db.read() as s:
        assert trial_balance(s).difference == 0  # the ledger alone does not notice
    violations = check_database(world.db)
    assert violations and {v.payment_id for v in violations} == {pid}
    assert any(v.rule == "received = applied + held" for v in violations)


# ---------------------------------------------------------------- the callback storm
PAYMENTS = 10
TRANSFERS = 20  # distinct transfers per payment, each delivered 5 times: 1,000 callbacks
COPIES = 5
IN_FLIGHT = 50


@pytest.fixture
def pg_world(postgres_templates: PostgresTemplates, tmp_path: Path, pki: TestPki):  # type: ignore[no-untyped-def]
    with fresh_database("postgresql", postgres_templates, tmp_path) as db:
        yield make_world(db, pki)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_thousand_callbacks_on_postgresql(pg_world: World, tmp_path: Path, pki: TestPki,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 callbacks mixed across 10 payments (20 different transfers of an eighth of the
    fees each, every one delivered five times), 50 in flight: exactly one paid state per
    payment, every transfer accounted once (credited or held), the ledger balanced, and
    ``vnegov payments check`` clean."""
    world = pg_world
    payments = [new_payment(world) for _ in range(PAYMENTS)]
    calls = [(pid, due, f"STORM{i:02d}{t:03d}") for i, (pid, due) in enumerate(payments)
             for t in range(TRANSFERS) for _ in range(COPIES)]
    random.Random(12).shuffle(calls)
    assert len(calls) == 1000
    references = {pid: world.payments.get(pid).reference for pid, _ in payments}
    gate = threading.Semaphore(IN_FLIGHT)
    start = threading.Barrier(IN_FLIGHT)
    counter = itertools.count()

    def callback(call: tuple[str, int, str]) -> ConfirmOutcome:
        pid, due, tx = call
        if next(counter) < IN_FLIGHT:
            start.wait(timeout=30)
        with gate:
            return world.payments.confirm(
                channel="vietqr", transaction_id=tx, reference=references[pid],
                amount=due // 8, at=T0, success=True, exact_amount=False, request_id="storm",
                now=T0 + dt.timedelta(minutes=1)).outcome

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        outcomes = Counter(pool.map(callback, calls))
    # Eight eighths pay a payment; the channel's money after that is held as an exception
    # (for a refund to its sender), not credited and not lost.
    assert outcomes == {ConfirmOutcome.APPLIED: PAYMENTS * 8,
                        ConfirmOutcome.HELD: PAYMENTS * (TRANSFERS - 8),
                        ConfirmOutcome.ALREADY_CONFIRMED: PAYMENTS * TRANSFERS * (COPIES - 1)}
    with world.db.read() as s:
        paid = Counter(s.execute(select(TransitionRow.payment_id).where(
            TransitionRow.to_state == "paid")).scalars())
        events = dict(s.execute(select(ChannelEventRow.payment_id, func.count()).group_by(
            ChannelEventRow.payment_id)).all())
        assert trial_balance(s).difference == 0
    for pid, due in payments:
        p = world.payments.get(pid)
        assert paid[pid] == 1, pid  # one paid state, then overpaid
        assert events[pid] == TRANSFERS
        assert due % 8 == 0 and (p.state, p.collected, p.held) == (S.PAID, due, 0)
        held = [e for e in world.recon.exceptions(size=1000) if e.payment_ids == pid]
        assert len(held) == TRANSFERS - 8 and {e.amount for e in held} == {due // 8}
    assert check_database(world.db) == []
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps({
        "data_dir": str(tmp_path),
        "storage": {"url": world.db.url.render_as_string(hide_password=False)},
        "payments": payments_section(pki, tmp_path)}))
    capsys.readouterr()
    assert main(["--config", str(config), "payments", "check"], {}) == 0
    assert f"{PAYMENTS} payments checked" in capsys.readouterr().out


def test_payments_check_names_the_payments_that_break_an_invariant(
        sqlite_world: World, sqlite_db: Database, tmp_path: Path, pki: TestPki,
        capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import update

    good = sqlite_world.paid_payment(request_id="check-good")
    bad = sqlite_world.paid_payment(request_id="check-bad")
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps({
        "data_dir": str(tmp_path),
        "storage": {"url": sqlite_db.url.render_as_string(hide_password=False)},
        "payments": payments_section(pki, tmp_path)}))
    assert main(["--config", str(config), "payments", "check"], {}) == 0
    assert "2 payments checked" in capsys.readouterr().out
    with sqlite_db.write() as s:
        s.execute(update(PaymentRow).where(PaymentRow.id == bad).values(refunded=1))
    assert main(["--config", str(config), "payments", "check"], {}) == 1
    out = capsys.readouterr()
    assert f"payments/{bad}: refunds <= collected" in out.out
    assert f"payments/{bad}" in out.err and good not in out.out + out.err
