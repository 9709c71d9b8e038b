from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from payments.payments import Payer, PaymentState
from server.payments.common import trial_balance
from server.payments.store import ConfirmOutcome
from server.storage.payments import ReceiptRow, TransitionRow
from tests.payments.support import HCM, T0
from tests.server.payments.conftest import World


@pytest.mark.slow
def test_100_identical_callbacks_pay_once(world: World) -> None:
    """On SQLite and PostgreSQL: one paid, one receipt per body, 99 "already confirmed"."""
    p = world.payments.create_payment(
        caller="c", request_id="req-concurrent", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-req-concurrent", payer=Payer("A"),
        channel="platform", now=T0)
    world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=T0)
    barrier = threading.Barrier(16)

    def callback(_: int) -> ConfirmOutcome:
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return world.payments.confirm(
            channel="platform", transaction_id="PAY20250801000001", reference=p.reference,
            amount=p.amount_due, at=T0, success=True, exact_amount=True, request_id="cb",
            now=T0 + dt.timedelta(seconds=1)).outcome

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(callback, range(100)))
    assert outcomes.count(ConfirmOutcome.APPLIED) == 1
    assert outcomes.count(ConfirmOutcome.ALREADY_CONFIRMED) == 99

    # Several workers race to issue the receipt: exactly one is issued.
    with ThreadPoolExecutor(max_workers=4) as pool:
        issued = list(pool.map(lambda _: world.receipts.issue_for_payment(p.id, now=T0),
                               range(4)))
    assert sum(len(i) for i in issued) == 1
    with world.db.read() as s:
        assert s.execute(select(func.count()).select_from(ReceiptRow)).scalar_one() == 1
        paid = s.execute(select(func.count()).select_from(TransitionRow).where(
            TransitionRow.to_state == "paid")).scalar_one()
        assert paid == 1
        assert trial_balance(s).difference == 0
    assert world.payments.get(p.id).state is PaymentState.PAID


def test_concurrent_refunds_never_exceed_what_was_collected(world: World) -> None:
    """20 concurrent refunds of 30% each: at most three are granted, on both databases."""
    import payments.errors as pe

    pid = world.paid_payment(request_id="req-refunds")
    collected = world.payments.get(pid).collected
    share = collected * 3 // 10
    barrier = threading.Barrier(10)

    def refund(i: int) -> bool:
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        try:
            world.payments.refund(caller="c", request_id=f"refund-race-{i:03d}", payment_id=pid,
                                  amount=share, reason="race", now=T0, agency_code=None)
            return True
        except pe.RefundExceedsCollected:
            return False

    with ThreadPoolExecutor(max_workers=10) as pool:
        granted = sum(pool.map(refund, range(20)))
    p = world.payments.get(pid)
    assert granted == 3 and p.refunded == 3 * share <= p.collected
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0 and tb.balance("REFUNDS_PAYABLE") == -3 * share


def test_two_workers_never_take_the_same_outbox_rows(world: World) -> None:
    from server.payments.common import claim, enqueue

    with world.db.write() as s:
        for i in range(60):
            enqueue(s, "webhook", f"row-{i}", {"n": i}, T0)
    barrier = threading.Barrier(2)

    def worker(_: int) -> list[str]:
        barrier.wait(timeout=5)
        return [r.ref for r in claim(world.db, "webhook", now=T0, limit=40)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(worker, range(2))
    assert not set(a) & set(b) and len(a) + len(b) == 60
    assert claim(world.db, "webhook", now=T0, limit=40) == []  # leased
    leased_until = T0 + dt.timedelta(minutes=3)
    assert len(claim(world.db, "webhook", now=leased_until, limit=100)) == 60


def test_concurrent_retries_of_one_create_make_one_payment(world: World) -> None:
    barrier = threading.Barrier(8)

    def create(_: int) -> str:
        barrier.wait(timeout=5)
        return world.payments.create_payment(
            caller="portal", request_id="same-create-0001", agency_code=HCM, province="79",
            procedure_code="2.000815", dossier_code="H29-RACE", payer=Payer("A"),
            channel="vietqr", now=T0).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(create, range(8)))
    assert len(ids) == 1
    assert len(world.payments.list_payments(agency_code=HCM, after="", size=10)) == 1


@pytest.mark.parametrize("action", ["replace", "cancel"])
def test_concurrent_corrections_of_one_receipt_make_one_document(world: World,
                                                                 action: str) -> None:
    """Eight officers correct (or cancel) the same receipt at once, each with its own request
    id: one new document, the rest refused, and the numbers stay gapless."""
    import payments.errors as pe
    from payments.fees import FeeKind
    from payments.receipts import ReceiptKind, ReceiptLine, check_gapless
    from server.storage.payments import ReceiptCancellationRow

    pid = world.paid_payment(request_id=f"req-correct-race-{action}")
    world.receipts.issue_for_payment(pid, now=T0)
    target = next(r for r in world.receipts.for_payment(pid) if r.data.total == 100000)
    barrier = threading.Barrier(8)

    def correct(i: int) -> bool:
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        try:
            if action == "replace":
                world.receipts.correct_idempotent(
                    target.id, kind=ReceiptKind.REPLACEMENT, lines=(ReceiptLine(
                        "LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),),
                    reason="Sai tên", actor="finance", request_id=f"race-fix-{i:03d}", now=T0)
            else:
                world.receipts.cancel(target.id, reason="Thu nhầm", actor="finance",
                                      request_id=f"race-cancel-{i:03d}", now=T0)
            return True
        except pe.FailedPrecondition:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = sum(pool.map(correct, range(8)))
    assert done == 1
    with world.db.read() as s:
        related = s.execute(select(func.count()).select_from(ReceiptRow).where(
            ReceiptRow.related_id == target.id)).scalar_one()
        notices = s.execute(select(func.count()).select_from(ReceiptCancellationRow))\
            .scalar_one()
    assert (related, notices) == ((1, 0) if action == "replace" else (0, 1))
    assert world.receipts.get(target.id).status == ("replaced" if action == "replace"
                                                    else "cancelled")
    assert all(check_gapless(ns) for ns in world.receipts.numbers().values())
