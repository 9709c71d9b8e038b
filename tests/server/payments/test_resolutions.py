"""Resolving reconciliation exceptions with apply_to_payment: statement money that shows a
payment's channel money already credited settles that channel's CLEARING instead of crediting
the payment again, so refunds stay within the money actually received."""

from __future__ import annotations

import datetime as dt

import pytest

import payments.errors as pe
from payments.payments import Payer
from payments.reconcile import Statement, StatementLine, write_camt053
from server.payments.common import trial_balance
from tests.payments.support import HCM, T0
from tests.server.payments.conftest import World

ACCOUNT = "113000012345"
LATER = T0 + dt.timedelta(days=1)


def statement(day: int, opening: int, lines: list[StatementLine]) -> bytes:
    d = dt.date(2025, 8, day)
    return write_camt053([Statement(f"S{day}", ACCOUNT, bank_id="970415", from_date=d,
                                    to_date=d, opening=opening, lines=lines)],
                         message_id=f"M{day}", created=T0)


def line(key: str, amount: int, text: str, day: int = 1) -> StatementLine:
    d = dt.date(2025, 8, day)
    return StatementLine(ACCOUNT, key, amount, True, d, d, key, "", text)


def vietqr_payment(world: World, name: str) -> str:
    p = world.payments.create_payment(
        caller="c", request_id=f"req-{name}", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code=f"D-{name}", payer=Payer("A"),
        channel="vietqr", now=T0)
    world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=T0)
    return p.id


def transfer(world: World, pid: str, tx: str, amount: int) -> str:
    p = world.payments.get(pid)
    return world.payments.confirm(channel="vietqr", transaction_id=tx, reference=p.reference,
                                  amount=amount, at=T0, success=True, exact_amount=False,
                                  request_id="r", now=T0).outcome.value


def reconcile(world: World, day: int, lines: list[StatementLine], run: str) -> dict[str, int]:
    with world.db.read() as s:
        opening = trial_balance(s).balance(f"BANK:{ACCOUNT}")
    world.recon.import_statement(statement(day, opening, lines), fmt="camt053", actor="f",
                                 request_id=f"i-{run}", now=T0)
    return world.recon.reconcile(as_of=T0 + dt.timedelta(days=day), actor="f",
                                 run_id=run)["counts"]


def resolve(world: World, outcome: str, pid: str, request_id: str) -> None:
    [exc] = [e for e in world.recon.exceptions() if e.outcome == outcome]
    world.recon.resolve(exc.id, action="apply_to_payment", payment_id=pid, actor="finance",
                        request_id=request_id, now=LATER)


def refund(world: World, pid: str, amount: int, request_id: str) -> str:
    return world.payments.refund(caller="c", request_id=request_id, payment_id=pid,
                                 amount=amount, reason="r", now=LATER, agency_code=None)


def balances(world: World) -> dict[str, int]:
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0
    return {a: tb.balance(a) for a in ("SUSPENSE", "CLEARING:vietqr", f"BANK:{ACCOUNT}",
                                       "OVERPAYMENTS", "ADJUSTMENTS")}


def test_amount_mismatch_showing_channel_money_settles_clearing(world: World) -> None:
    # Two VietQR transfers pay the fee; the day's statement shows only the first, so the line
    # is an amount mismatch. That line is the bank's view of money the payment already
    # received: applying it must not credit the payment again.
    pid = vietqr_payment(world, "mismatch")
    due = world.payments.get(pid).amount_due
    first = due // 2
    assert transfer(world, pid, "FT-A", first) == "applied"
    assert transfer(world, pid, "FT-B", due - first) == "applied"
    world.receipts.issue_for_payment(pid, now=T0)
    assert reconcile(world, 1, [line("FT-A", first, "chuyen khoan")], "mm1") == {
        "amount_mismatch": 1}
    resolve(world, "amount_mismatch", pid, "apply-mm")
    with pytest.raises(pe.RefundExceedsCollected):
        refund(world, pid, due + first, "refund-too-much")
    p = world.payments.get(pid)
    assert (p.state.value, p.collected, p.held) == ("paid", due, 0)
    assert balances(world) == {"SUSPENSE": 0, "CLEARING:vietqr": due - first,
                               f"BANK:{ACCOUNT}": first, "OVERPAYMENTS": 0, "ADJUSTMENTS": 0}
    # The second transfer reaches the statement and matches what is left unsettled.
    assert reconcile(world, 2, [line("FT-B", due - first, "chuyen khoan", 2)], "mm2") == {
        "matched": 1}
    assert balances(world)["CLEARING:vietqr"] == 0
    assert refund(world, pid, due, "refund-all")
    assert world.payments.get(pid).state.value == "refunded"


def test_duplicate_showing_late_channel_money_is_counted_once(world: World) -> None:
    # The citizen transfers the fee twice. The statement shows both transfers (the second is a
    # duplicate of a payment matched in full); the bank's notification of the second arrives
    # late and is held. The one extra transfer is credited once, whichever is applied first.
    for order in ("duplicate first", "held first"):
        name = order.split()[0]
        pid = vietqr_payment(world, name)
        p = world.payments.get(pid)
        due = p.amount_due
        assert transfer(world, pid, f"FT1-{name}", due) == "applied"
        world.receipts.issue_for_payment(pid, now=T0)
        day = 1 if name == "duplicate" else 3
        counts = reconcile(world, day, [line(f"FT1-{name}", due, p.reference, day),
                                        line(f"FT2-{name}", due, p.reference, day)],
                           f"dup-{name}")
        assert counts["matched"] == 1 and counts["duplicate"] == 1
        assert transfer(world, pid, f"FT2-{name}", due) == "held"
        steps = ["duplicate", "held_channel_money"]
        for outcome in steps if name == "duplicate" else steps[::-1]:
            resolve(world, outcome, pid, f"apply-{name}-{outcome}")
        with pytest.raises(pe.RefundExceedsCollected):
            refund(world, pid, 3 * due, f"refund-too-much-{name}")
        p = world.payments.get(pid)
        assert (p.state.value, p.collected, p.held) == ("overpaid", 2 * due, due)
        assert refund(world, pid, 2 * due, f"refund-all-{name}")
    assert balances(world) == {"SUSPENSE": 0, "CLEARING:vietqr": 0,
                               f"BANK:{ACCOUNT}": 4 * due, "OVERPAYMENTS": 0,
                               "ADJUSTMENTS": 0}


def test_a_second_transfer_is_new_money_held_for_refund(world: World) -> None:
    # The statement shows the channel's transfer and a second one nobody notified: the second
    # is a duplicate of a payment matched in full, and applying it is a real overpayment.
    pid = vietqr_payment(world, "second")
    p = world.payments.get(pid)
    due = p.amount_due
    assert transfer(world, pid, "FT1-second", due) == "applied"
    world.receipts.issue_for_payment(pid, now=T0)
    assert reconcile(world, 1, [line("FT1-second", due, p.reference),
                                line("FT2-second", due + 3000, p.reference)], "second") == {
        "matched": 1, "duplicate": 1}
    resolve(world, "duplicate", "", "apply-second")
    p = world.payments.get(pid)
    assert (p.state.value, p.collected, p.held) == ("overpaid", 2 * due + 3000, due + 3000)
    assert balances(world) == {"SUSPENSE": 0, "CLEARING:vietqr": 0,
                               f"BANK:{ACCOUNT}": 2 * due + 3000,
                               "OVERPAYMENTS": -(due + 3000), "ADJUSTMENTS": 0}
    with pytest.raises(pe.RefundExceedsCollected):
        refund(world, pid, 2 * due + 3001, "refund-too-much")
    assert refund(world, pid, 2 * due + 3000, "refund-all")
    assert balances(world)["OVERPAYMENTS"] == 0


def test_unidentified_line_showing_channel_money_settles_it(world: World) -> None:
    # Two payments of one amount paid through VietQR; a line with neither reference nor bank
    # id cannot be told apart (money without payment). The officer finds it is the first one's
    # transfer: it settles that payment's CLEARING and credits nothing.
    ids = [vietqr_payment(world, f"same-{i}") for i in range(2)]
    due = world.payments.get(ids[0]).amount_due
    for i, pid in enumerate(ids):
        assert transfer(world, pid, f"FT-same-{i}", due) == "applied"
        world.receipts.issue_for_payment(pid, now=T0)
    assert reconcile(world, 1, [line("BANK-1", due, "chuyen tien")], "same") == {
        "money_without_payment": 1, "awaiting_settlement": 2}
    resolve(world, "money_without_payment", ids[0], "apply-same")
    p = world.payments.get(ids[0])
    assert (p.state.value, p.collected, p.held) == ("paid", due, 0)
    assert balances(world)["CLEARING:vietqr"] == due and balances(world)["SUSPENSE"] == 0
    with pytest.raises(pe.RefundExceedsCollected):
        refund(world, ids[0], due + 1, "refund-too-much")
    # Only the second payment is still waiting for its money.
    assert reconcile(world, 2, [line("FT-same-1", due, "", 2)], "same2") == {"matched": 1}
    assert balances(world)["CLEARING:vietqr"] == 0


def test_money_for_a_refunded_payment_goes_back_to_its_sender(world: World) -> None:
    pid = vietqr_payment(world, "refunded")
    p = world.payments.get(pid)
    due = p.amount_due
    assert transfer(world, pid, "FT1-refunded", due) == "applied"
    world.receipts.issue_for_payment(pid, now=T0)
    assert refund(world, pid, due, "refund-before")
    reconcile(world, 1, [line("FT1-refunded", due, p.reference),
                         line("FT2-refunded", due, p.reference)], "refunded")
    [exc] = [e for e in world.recon.exceptions() if e.outcome == "duplicate"]
    with pytest.raises(pe.FailedPrecondition, match="refund_to_sender") as refused:
        world.recon.resolve(exc.id, action="apply_to_payment", actor="finance",
                            request_id="apply-refunded", now=LATER)
    assert refused.value.reason == "PAYMENT_REFUNDED"
    p = world.payments.get(pid)
    assert (p.state.value, p.collected, p.refunded) == ("refunded", due, due)
    world.recon.resolve(exc.id, action="refund_to_sender", actor="finance",
                        request_id="return-refunded", now=LATER)
    assert balances(world)["SUSPENSE"] == 0


def test_a_channel_confirmation_after_the_applied_statement_line_is_not_credited_again(
        world: World) -> None:
    # The bank's statement brings the citizen's transfer before VietQR's notification does:
    # the line is money without payment, and the officer applies it. The notification, when it
    # comes, names the bank's reference: the same money, answered "already confirmed".
    pid = vietqr_payment(world, "bank-first")
    p = world.payments.get(pid)
    due = p.amount_due
    assert reconcile(world, 1, [line("FT-bank-first", due, "nop phi")], "bank-first") == {
        "money_without_payment": 1}
    resolve(world, "money_without_payment", pid, "apply-bank-first")
    world.receipts.issue_for_payment(pid, now=LATER)
    assert world.payments.get(pid).collected == due
    assert transfer(world, pid, "FT-bank-first", due) == "already_confirmed"
    assert transfer(world, pid, "FT-bank-first", due) == "already_confirmed"
    p = world.payments.get(pid)
    assert (p.state.value, p.collected, p.held) == ("paid", due, 0)
    with pytest.raises(pe.RefundExceedsCollected):
        refund(world, pid, due + 1, "refund-too-much-bank-first")
    assert balances(world) == {"SUSPENSE": 0, "CLEARING:vietqr": 0, f"BANK:{ACCOUNT}": due,
                               "OVERPAYMENTS": 0, "ADJUSTMENTS": 0}
    # Nothing waits on CLEARING: no later run reports the payment's money missing.
    assert reconcile(world, 2, [], "bank-first-later") == {}
    assert [(e.outcome, e.note) for e in world.recon.exceptions()] == []
    # A notification for that line with another amount is not the same money: it is held.
    other = vietqr_payment(world, "bank-first-other")
    q = world.payments.get(other)
    reconcile(world, 3, [line("FT-other", q.amount_due, "nop phi", 3)], "other")
    resolve(world, "money_without_payment", other, "apply-other")
    assert transfer(world, other, "FT-other", q.amount_due + 1000) == "held"
    assert world.payments.get(other).collected == q.amount_due


def test_held_money_applied_to_another_payment_moves_its_settlement(world: World) -> None:
    # The channel names payment A for a late transfer (held); the day's statement has a line
    # with A's reference (matched as A's money) and the bank's view of that same transfer
    # (a duplicate). The officer finds the money is B's and applies both to B: the line that
    # matched under A's reference already settled CLEARING, so the duplicate line is new money
    # for B, never a second settlement of the same channel money.
    a, b = vietqr_payment(world, "named"), vietqr_payment(world, "real")
    due = world.payments.get(a).amount_due
    assert world.payments.expire_due(now=T0 + dt.timedelta(hours=2)) == 2
    assert transfer(world, a, "FT-held", due) == "held"
    ref = world.payments.get(a).reference
    assert reconcile(world, 1, [line("FT-ref", due, ref), line("FT-held", due, "")],
                     "moved") == {"matched": 1, "duplicate": 1}
    resolve(world, "held_channel_money", b, "apply-held")
    resolve(world, "duplicate", b, "apply-duplicate")
    assert balances(world)["CLEARING:vietqr"] == 0
    assert balances(world)["SUSPENSE"] == 0
    pb = world.payments.get(b)
    assert (pb.state.value, pb.collected) == ("overpaid", 2 * due)  # two transfers arrived
    assert world.payments.get(a).collected == 0


def test_a_reopened_payment_gets_a_new_window_and_may_expire_again(world: World) -> None:
    pid = vietqr_payment(world, "reopened")
    p = world.payments.get(pid)
    due = p.amount_due
    assert world.payments.expire_due(now=T0 + dt.timedelta(hours=1)) == 1
    assert transfer(world, pid, "FT-half", due // 2) == "held"
    resolve(world, "held_channel_money", pid, "apply-half")
    p = world.payments.get(pid)
    assert (p.state.value, p.collected) == ("partially_paid", due // 2)
    # The rest is due within a fresh window from the officer's decision, not at once.
    assert p.expires_at == LATER + dt.timedelta(minutes=30)
    assert world.payments.expire_due(now=LATER + dt.timedelta(minutes=1)) == 0
    assert world.payments.expire_due(now=LATER + dt.timedelta(minutes=31)) == 1
    p = world.payments.get(pid)
    assert (p.state.value, p.collected, p.held) == ("expired", due // 2, due // 2)
    assert balances(world)["OVERPAYMENTS"] == -(due // 2)
    assert refund(world, pid, due // 2, "refund-reopened")


def test_money_found_missing_and_shown_later_is_not_written_off(world: World) -> None:
    pid = vietqr_payment(world, "overdue")
    p = world.payments.get(pid)
    due = p.amount_due
    assert transfer(world, pid, "FT-overdue", due) == "applied"
    world.receipts.issue_for_payment(pid, now=T0)
    assert reconcile(world, 3, [], "overdue") == {"payment_without_money": 1}
    [exc] = world.recon.exceptions()
    # The bank's line arrives after the run: it settles CLEARING and answers the exception.
    assert reconcile(world, 4, [line("FT-overdue", due, p.reference, 4)], "shown") == {
        "matched": 1}
    assert not world.recon.exceptions()
    with pytest.raises(pe.FailedPrecondition) as refused:
        world.recon.resolve(exc.id, action="write_off", actor="finance", request_id="w",
                            now=LATER)
    assert refused.value.reason == "EXCEPTION_RESOLVED"
    assert balances(world) == {"SUSPENSE": 0, "CLEARING:vietqr": 0, f"BANK:{ACCOUNT}": due,
                               "OVERPAYMENTS": 0, "ADJUSTMENTS": 0}


def test_late_money_does_not_reopen_a_payment_whose_dossier_has_a_new_one(
        world: World) -> None:
    pid = vietqr_payment(world, "superseded")
    p = world.payments.get(pid)
    assert world.payments.expire_due(now=T0 + dt.timedelta(hours=1)) == 1
    again = world.payments.create_payment(
        caller="c", request_id="req-superseded-2", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-superseded", payer=Payer("A"),
        channel="vietqr", now=T0 + dt.timedelta(hours=1))
    world.payments.open(again.id, channel_url="", actor="t", request_id="o2",
                        now=T0 + dt.timedelta(hours=1))
    assert transfer(world, pid, "FT-late", p.amount_due) == "held"
    [exc] = world.recon.exceptions()
    with pytest.raises(pe.Conflict) as refused:
        world.recon.resolve(exc.id, action="apply_to_payment", payment_id=pid, actor="finance",
                            request_id="apply-late", now=LATER)
    assert refused.value.reason == "DOSSIER_ALREADY_HAS_PAYMENT"
    assert refused.value.metadata["payment"] == f"payments/{again.id}"
    # Nothing changed: the exception is open, the payment expired, the money on SUSPENSE.
    assert [e.id for e in world.recon.exceptions()] == [exc.id]
    assert world.payments.get(pid).state.value == "expired"
    assert balances(world)["SUSPENSE"] == -p.amount_due
    world.recon.resolve(exc.id, action="apply_to_payment", payment_id=again.id,
                        actor="finance", request_id="apply-new", now=LATER)
    assert world.payments.get(again.id).state.value == "paid"
