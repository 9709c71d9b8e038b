"""Random operation sequences against the real store (SQLite), checking the invariants:
trial balance zero, refunds never above what was collected, collected never above the money
actually received (channel transfers and bank credits, each counted once), CLEARING never
settled twice, one original receipt per collecting body of each paid payment, receipt numbers
exactly 1..N per template, series and year (replacements and adjustments included)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

import payments.errors as pe
from payments.payments import PAID_STATES, Payer
from payments.receipts import check_gapless, group_lines
from server.payments.checks import check_database
from server.payments.common import trial_balance
from server.storage import migrate
from server.storage.db import Database
from server.storage.payments import ChannelEventRow, ReceiptRow
from tests.payments.support import HCM, T0
from tests.server.payments.conftest import World, make_world
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki

PROCEDURES = ["1.000494", "2.000815", "1.001612"]
MONEY_OUTCOMES = ("money_without_payment", "duplicate", "amount_mismatch", "held_channel_money")
RESOLVE = st.tuples(st.just("resolve"), st.sampled_from(
    ["apply_to_payment", "refund_to_sender", "write_off", "issue_receipt", "dismiss"]),
    st.sampled_from(["first", "named"]), st.integers(0, 5))
# A bank statement line showing a channel transfer we recorded (with the bank's id, and the
# payment's reference or no text): not new money.
SHOWS = st.tuples(st.just("shows"), st.integers(0, 40), st.sampled_from(["reference", "plain"]))
# The channel's confirmation of a transfer whose bank statement line came first (the channel
# names the bank's reference): the same money, not more of it.
LATE = st.tuples(st.just("late"), st.integers(0, 40))
# Days pass: money a channel confirmed becomes overdue on the statements.
LATER = st.tuples(st.just("later"), st.integers(1, 4))
# Payments, callbacks (some duplicated), refunds, expiry, receipts, a new year, bank statement
# lines (ours, mistyped, strangers', and the bank's view of our channel transfers),
# reconciliation runs and exception resolutions (applied to the first payment or to the one the
# reconciliation named).
ops = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(PROCEDURES), st.sampled_from(
        ["platform", "vietqr"])),
    st.tuples(st.just("pay"), st.integers(0, 20), st.sampled_from(["exact", "half", "over"])),
    st.tuples(st.just("dup"), st.integers(0, 20)),
    st.tuples(st.just("refund"), st.integers(0, 20), st.integers(1, 300000)),
    st.tuples(st.just("expire"), st.integers(0, 120)),
    st.tuples(st.just("issue"), st.integers(0, 20)),
    st.tuples(st.just("newyear"),),
    st.tuples(st.just("bank"), st.integers(0, 20), st.sampled_from(["ours", "typo", "stranger"])),
    SHOWS,
    st.tuples(st.just("reconcile"),),
    RESOLVE, LATE, LATER,
    st.tuples(st.just("correct"), st.integers(0, 20), st.sampled_from(
        ["replacement", "adjustment", "cancel"])),
), min_size=5, max_size=40)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=ops)
def test_invariants_hold_over_random_sequences(tmp_path_factory: pytest.TempPathFactory,
                                               pki: TestPki, sequence: list[tuple]) -> None:
    directory: Path = tmp_path_factory.mktemp("prop")
    db = Database(f"sqlite:///{directory / 'p.db'}")
    migrate.upgrade(db)
    try:
        run(make_world(db, pki), sequence)
    finally:
        db.dispose()


# Money through every path: few payments, transfers in parts or more than due, statements that
# show some transfers (amount mismatches), show them next to a second transfer (duplicates) or
# show them after other money, reconciliation and resolutions; refunds up to everything
# collected.
PAY = st.tuples(st.just("pay"), st.integers(0, 1), st.sampled_from(["exact", "half", "over"]))
APPLY = st.tuples(st.just("resolve"), st.just("apply_to_payment"),
                  st.sampled_from(["first", "named"]), st.integers(0, 5))
money_ops = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(PROCEDURES), st.just("vietqr")),
    PAY, PAY, PAY,
    st.tuples(st.just("refund"), st.integers(0, 1), st.sampled_from(["all", "more"])),
    st.tuples(st.just("expire"), st.integers(0, 120)),
    st.tuples(st.just("issue"), st.integers(0, 1)),
    st.tuples(st.just("bank"), st.integers(0, 1), st.sampled_from(["ours", "stranger"])),
    SHOWS, SHOWS, SHOWS, LATE, LATE, LATER,
    st.tuples(st.just("reconcile"),), st.tuples(st.just("reconcile"),),
    RESOLVE, APPLY, APPLY,
), min_size=5, max_size=40)
# Each sequence opens its payments first and ends reconciling and applying what is left.
money_sequences = st.builds(
    lambda creates, middle, tail: [*creates, *middle, ("reconcile",), *tail],
    st.lists(st.tuples(st.just("create"), st.sampled_from(PROCEDURES), st.just("vietqr")),
             min_size=1, max_size=2),
    money_ops, st.lists(APPLY, min_size=1, max_size=4))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=money_sequences)
# A statement showing one of two transfers (amount mismatch), and one showing a transfer next
# to a second one nobody notified (duplicate), both applied to the payment they name.
@example(sequence=[("create", "2.000815", "vietqr"), ("pay", 0, "half"), ("pay", 0, "half"),
                   ("shows", 0, "plain"), ("reconcile",),
                   ("resolve", "apply_to_payment", "named", 0)])
@example(sequence=[("create", "2.000815", "vietqr"), ("pay", 0, "exact"),
                   ("shows", 0, "reference"), ("bank", 0, "ours"), ("reconcile",),
                   ("pay", 0, "exact"), ("resolve", "apply_to_payment", "named", 0),
                   ("resolve", "apply_to_payment", "named", 0), ("refund", 0, "more")])
def test_money_is_counted_once_over_random_sequences(tmp_path_factory: pytest.TempPathFactory,
                                                     pki: TestPki, sequence: list[tuple]) -> None:
    directory: Path = tmp_path_factory.mktemp("prop")
    db = Database(f"sqlite:///{directory / 'p.db'}")
    migrate.upgrade(db)
    try:
        run(make_world(db, pki), sequence)
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=money_sequences)
def test_money_is_counted_once_on_postgresql(postgres_templates: PostgresTemplates,
                                            pki: TestPki, sequence: list[tuple]) -> None:
    """The same sequences and the same checker on PostgreSQL (a fresh database each)."""
    url = postgres_templates.new_database()
    db = Database(url)
    try:
        run(make_world(db, pki), sequence)
    finally:
        db.dispose()
        postgres_templates.drop(url)


# Receipts under corrections: fewer kinds of operation, so that paid payments, their receipts,
# replacements, adjustments, cancellations and new years meet often in one sequence.
receipt_ops = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(PROCEDURES), st.just("platform")),
    st.tuples(st.just("pay"), st.integers(0, 5), st.just("exact")),
    st.tuples(st.just("issue"), st.integers(0, 5)),
    st.tuples(st.just("correct"), st.integers(0, 5), st.sampled_from(
        ["replacement", "adjustment", "cancel"])),
    st.tuples(st.just("newyear"),),
), min_size=5, max_size=30)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=receipt_ops)
def test_numbers_stay_gapless_through_corrections(tmp_path_factory: pytest.TempPathFactory,
                                                  pki: TestPki, sequence: list[tuple]) -> None:
    directory: Path = tmp_path_factory.mktemp("prop")
    db = Database(f"sqlite:///{directory / 'p.db'}")
    migrate.upgrade(db)
    try:
        run(make_world(db, pki), sequence)
    finally:
        db.dispose()


def _bank_line(world: World, ids: list[str], op: tuple, now: dt.datetime, n: int) -> Any:
    """A credit on the collection account: for one of our payments (maybe mistyped), or not."""
    from payments.channels import create_reference
    from payments.money import local_date
    from payments.reconcile import StatementLine

    text, amount = create_reference(f"X{n}"), 77000
    if ids and op[2] != "stranger":
        p = world.payments.get(ids[op[1] % len(ids)])
        amount, text = p.amount_due, p.reference
        if op[2] == "typo":
            text = text[:3] + ("1" if text[3] != "1" else "2") + text[4:]
    day = local_date(now)
    return StatementLine("113000012345", f"FT{n}", amount, True, day, day, f"FT{n}", "", text)


def _shown_line(world: World, transfer: tuple[str, str, int], how: str, now: dt.datetime) -> Any:
    """The bank's line for a channel transfer we recorded: the same money, not more of it."""
    from payments.money import local_date
    from payments.reconcile import StatementLine

    pid, tx, amount = transfer
    text = world.payments.get(pid).reference if how == "reference" else ""
    day = local_date(now)
    return StatementLine("113000012345", tx, amount, True, day, day, tx, "", text)


def _correct(world: World, pid: str, how: str, now: dt.datetime) -> None:
    """Replace, adjust or cancel one of the payment's receipts (corrections take numbers from
    the same series as originals)."""
    from payments.receipts import ReceiptKind, ReceiptLine

    world.receipts.issue_for_payment(pid, now=now)  # the outbox worker got there first
    receipts = world.receipts.for_payment(pid)
    if not receipts:
        return
    target = receipts[len(receipts) // 2]
    if how == "cancel":
        world.receipts.cancel(target.id, reason="r", actor="f", request_id="c", now=now)
        return
    first = target.data.lines[0]
    lines = (first,) if how == "replacement" else (
        ReceiptLine(first.item_code, first.name, first.kind, -1000),)
    world.receipts.correct(target.id, kind=ReceiptKind(how), lines=lines, reason="r",
                           actor="f", request_id="c", now=now)


def run(world: World, sequence: list[tuple]) -> None:
    now = T0
    ids: list[str] = []
    txn = itertools.count(1)
    last_tx: dict[str, str] = {}
    lines: list[Any] = []
    transfers: list[tuple[str, str, int]] = []  # channel transfers the store recorded
    shown: set[str] = set()
    # Money a bank credit brought that is not the bank's view of a channel transfer: per
    # payment whose reference it carries, or that an officer applied a credit to.
    bank_money: dict[str, int] = defaultdict(int)
    bank_total = directed = 0
    ours: list[tuple[str, Any]] = []  # bank credits carrying one of our payments' reference
    late: set[str] = set()  # channel confirmations of those credits: the same money
    for op in sequence:
        now += dt.timedelta(minutes=1)
        kind = op[0]
        try:
            if kind == "create":
                p = world.payments.create_payment(
                    caller="c", request_id=uuid.uuid4().hex, agency_code=HCM, province="79",
                    procedure_code=op[1], dossier_code=uuid.uuid4().hex, payer=Payer("A"), channel=op[2],
                    now=now)
                world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=now)
                ids.append(p.id)
            elif kind in ("pay", "dup", "refund", "issue") and ids:
                pid = ids[op[1] % len(ids)]
                p = world.payments.get(pid)
                if kind == "pay":
                    share = {"exact": p.outstanding or p.amount_due,
                             "half": max(1, p.amount_due // 2),
                             "over": p.amount_due + 1000}[op[2]]
                    tx = f"T{next(txn)}"
                    last_tx[pid] = tx
                    result = world.payments.confirm(
                        channel=p.channel, transaction_id=tx, reference=p.reference,
                        amount=share, at=now, success=True,
                        exact_amount=p.channel == "platform", request_id="r", now=now)
                    if result.outcome.value in ("applied", "held"):
                        transfers.append((pid, tx, share))
                elif kind == "dup" and pid in last_tx:
                    world.payments.confirm(channel=p.channel, transaction_id=last_tx[pid],
                                           reference=p.reference, amount=p.amount_due, at=now,
                                           success=True, exact_amount=False, request_id="r",
                                           now=now)
                elif kind == "refund":
                    amount = op[2] if isinstance(op[2], int) else \
                        max(1, p.refundable + (op[2] == "more"))
                    world.payments.refund(caller="c", request_id=uuid.uuid4().hex,
                                          payment_id=pid, amount=amount, reason="r", now=now,
                                          agency_code=None)
                elif kind == "issue":
                    world.receipts.issue_for_payment(pid, now=now)
            elif kind == "expire":
                world.payments.expire_due(now=now + dt.timedelta(minutes=op[1]))
            elif kind == "bank":
                line = _bank_line(world, ids, op, now, next(txn))
                lines.append(line)
                bank_total += line.amount
                if ids and op[2] != "stranger":
                    bank_money[ids[op[1] % len(ids)]] += line.amount
                    if op[2] == "ours":
                        ours.append((ids[op[1] % len(ids)], line))
            elif kind == "late":
                waiting = [(pid, line) for pid, line in ours if line.bank_ref not in late]
                if waiting:
                    pid, line = waiting[op[1] % len(waiting)]
                    late.add(line.bank_ref)
                    world.payments.confirm(
                        channel="vietqr", transaction_id=line.bank_ref,
                        reference=world.payments.get(pid).reference, amount=line.amount,
                        at=now, success=True, exact_amount=False, request_id="r", now=now)
            elif kind == "later":
                now += dt.timedelta(days=op[1])
            elif kind == "shows":
                waiting = [t for t in transfers if t[1] not in shown]
                if waiting:
                    transfer = waiting[op[1] % len(waiting)]
                    shown.add(transfer[1])
                    lines.append(_shown_line(world, transfer, op[2], now))
            elif kind == "reconcile" and lines:
                from payments.reconcile import Statement, write_camt053

                day = lines[0].booking_date
                world.recon.import_statement(write_camt053(
                    [Statement(f"S{next(txn)}", "113000012345", from_date=day, to_date=day,
                               opening=0, lines=lines)], message_id="M", created=now),
                    fmt="camt053", actor="f", request_id="i", now=now)
                lines = []
                world.recon.reconcile(as_of=now, actor="f", run_id=f"run{next(txn)}")
            elif kind == "resolve":
                open_ = world.recon.exceptions()
                if op[1] == "apply_to_payment" and len(op) > 3:  # money to apply
                    open_ = [e for e in open_ if e.outcome in MONEY_OUTCOMES]
                chosen = open_[op[3] % len(open_):][:1] if len(op) > 3 and open_ else open_[:1]
                for exc in chosen:
                    target = ids[0] if ids and (len(op) < 3 or op[2] == "first") else ""
                    world.recon.resolve(exc.id, action=op[1], actor="f", request_id="r",
                                        now=now, payment_id=target)
                    if op[1] == "apply_to_payment":
                        event(f"applied: {exc.outcome}")
                        if target and target not in exc.payment_ids.split():
                            # The officer reads the money as the target's, against (or
                            # without) the reconciliation's reading: it is the target's.
                            bank_money[target] += exc.amount
                            directed += exc.amount
            elif kind == "correct" and ids:
                _correct(world, ids[op[1] % len(ids)], op[2], now)
            elif kind == "newyear":
                now = dt.datetime(now.year + 1, 1, 1, 0, 5, tzinfo=dt.UTC) - dt.timedelta(hours=7)
        except (pe.RefundExceedsCollected, pe.InvalidTransition, pe.PaymentExpired,
                pe.FailedPrecondition, pe.NotFound):
            pass
    for pid in ids:  # the outbox worker catches up
        if world.payments.get(pid).state in PAID_STATES:
            world.receipts.issue_for_payment(pid, now=now)
    with world.db.read() as s:
        tb = trial_balance(s)
        assert tb.difference == 0
        event(f"exceptions: {min(len(world.recon.exceptions(state='')), 3)}+")
        event(f"suspense used: {tb.balance('SUSPENSE') != 0 or 'SUSPENSE' in tb.balances}")
        receipts = s.execute(select(ReceiptRow)).scalars().all()
    with world.db.read() as s:
        channel_money: dict[str, int] = defaultdict(int)
        for pid, amount, tx in s.execute(select(
                ChannelEventRow.payment_id, ChannelEventRow.amount,
                ChannelEventRow.transaction_id).where(
                ChannelEventRow.outcome.in_(("applied", "held")))):
            if tx not in late:  # a late confirmation is a bank credit's money, counted there
                channel_money[pid or ""] += amount
    # Channel money is settled against the statement at most once.
    assert all(v >= 0 for a, v in tb.balances.items() if a.startswith("CLEARING:"))
    collected = 0
    for pid in ids:
        p = world.payments.get(pid)
        assert 0 <= p.refunded <= p.collected
        # What a payment collected is money it received: its channels' transfers and the bank
        # credits for it, never the bank's view of a transfer counted a second time.
        assert p.collected <= channel_money[pid] + bank_money[pid], pid
        collected += p.collected
    assert collected <= sum(channel_money.values()) + bank_total + directed
    for pid in ids:
        p = world.payments.get(pid)
        originals = [r for r in receipts if r.payment_id == pid and r.kind == "original"]
        expected = len(group_lines(p)) if p.paid_at is not None else 0
        assert len(originals) == expected
    for numbers in world.receipts.numbers().values():
        assert check_gapless(numbers)
    # The per-payment invariants, proved by the checker ``vnegov payments check`` runs.
    assert [str(v) for v in check_database(world.db)] == []
    event(f"corrections: {min(sum(r.kind != 'original' for r in receipts), 2)}+")
