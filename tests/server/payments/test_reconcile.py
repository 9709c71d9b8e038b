from __future__ import annotations

import datetime as dt

from payments.payments import Payer
from payments.reconcile import Statement, StatementLine, write_camt053
from server.payments.common import trial_balance
from tests.payments.support import HCM, T0
from tests.server.payments.conftest import World

ACCOUNT = "113000012345"


def statement(day: int, opening: int, lines: list[StatementLine]) -> bytes:
    d = dt.date(2025, 8, day)
    return write_camt053([Statement(f"S{day}", ACCOUNT, bank_id="970415", from_date=d,
                                    to_date=d, opening=opening, lines=lines)],
                         message_id=f"M{day}", created=T0)


def test_a_day_reconciles_once_and_exceptions_post_to_the_ledger(world: World) -> None:
    ids = [world.paid_payment(request_id=f"recon-payment-{i}", at=T0 + dt.timedelta(minutes=i))
           for i in range(3)]
    ps = [world.payments.get(i) for i in ids]
    for pid in ids:
        world.receipts.issue_for_payment(pid, now=T0)
    d1 = dt.date(2025, 8, 1)
    ref = ps[1].reference  # a changed check digit: always caught, always correctable
    typo = ref[:3] + ("1" if ref[3] != "1" else "2") + ref[4:]
    lines = [
        StatementLine(ACCOUNT, "FT1", ps[0].amount_due, True, d1, d1, "FT1", "",
                      f"{ps[0].reference} Le phi"),
        StatementLine(ACCOUNT, "FT2", ps[1].amount_due, True, d1, d1, "FT2", "", f"{typo} phi"),
        StatementLine(ACCOUNT, "FT3", 77000, True, d1, d1, "FT3", "", "chuyen tien"),
    ]
    data = statement(1, 0, lines)
    first = world.recon.import_statement(data, fmt="camt053", actor="finance", request_id="i1",
                                         now=T0)
    again = world.recon.import_statement(data, fmt="camt053", actor="finance", request_id="i2",
                                         now=T0)
    assert (first["new_lines"], again["new_lines"]) == (3, 0)
    as_of = T0 + dt.timedelta(days=3)
    summary = world.recon.reconcile(as_of=as_of, actor="finance", run_id="run1")
    assert summary["counts"]["matched"] == 2
    assert summary["counts"]["money_without_payment"] == 1
    assert summary["counts"]["payment_without_money"] == 1
    methods = {i.method.value for i in world.recon.items("run1") if i.outcome.value == "matched"}
    assert methods == {"creditor_reference", "corrected_reference"}
    # A second run, and a re-import, match nothing twice.
    world.recon.import_statement(data, fmt="camt053", actor="finance", request_id="i3", now=T0)
    rerun = world.recon.reconcile(as_of=as_of, actor="finance", run_id="run2")
    assert rerun["counts"].get("matched", 0) == 0 and rerun["lines"] == 0
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0
    assert tb.balance(f"BANK:{ACCOUNT}") == ps[0].amount_due + ps[1].amount_due + 77000
    assert tb.balance("SUSPENSE") == -77000
    stranger = [e for e in world.recon.exceptions() if e.outcome == "money_without_payment"]
    world.recon.resolve(stranger[0].id, action="refund_to_sender", actor="finance",
                        request_id="r", now=as_of)
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.balance("SUSPENSE") == 0 and tb.balance("REFUNDS_PAYABLE") == -77000
    # Day 2 must continue day 1: a wrong opening balance is an exception.
    closing = sum(line.amount for line in lines)
    world.recon.import_statement(statement(2, closing + 1, []), fmt="camt053", actor="f",
                                 request_id="i4", now=T0)
    assert any(e.outcome == "statement_discontinuity" for e in world.recon.exceptions())


def test_unidentified_money_applied_to_an_expired_payment(world: World) -> None:
    p = world.payments.create_payment(
        caller="c", request_id="req-late", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-req-late", payer=Payer("A"), channel="vietqr", now=T0)
    world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=T0)
    world.payments.expire_due(now=T0 + dt.timedelta(hours=2))
    d1 = dt.date(2025, 8, 1)
    world.recon.import_statement(statement(1, 0, [StatementLine(
        ACCOUNT, "FTX", p.amount_due, True, d1, d1, "FTX", "", "no reference")]),
        fmt="camt053", actor="f", request_id="i", now=T0)
    world.recon.reconcile(as_of=T0 + dt.timedelta(days=1), actor="f", run_id="late")
    [exc] = [e for e in world.recon.exceptions() if e.outcome == "money_without_payment"]
    world.recon.resolve(exc.id, action="apply_to_payment", payment_id=p.id, actor="finance",
                        request_id="r", now=T0 + dt.timedelta(days=1))
    assert world.payments.get(p.id).state.value == "paid"
    assert world.receipts.issue_for_payment(p.id, now=T0 + dt.timedelta(days=1))
    with world.db.read() as s:
        assert trial_balance(s).difference == 0


def test_channel_list_comparison(world: World) -> None:
    ids = [world.paid_payment(request_id=f"list-payment-{i}", at=T0 + dt.timedelta(minutes=i))
           for i in range(3)]
    ps = [world.payments.get(i) for i in ids]
    rows = ["reference,transaction_id,amount,paid_at,status"]
    rows.append(f"{ps[0].reference},TX{ps[0].id},{ps[0].amount_due},2025-08-01T09:00:00+07:00,paid")
    rows.append(f"{ps[1].reference},TX{ps[1].id},{ps[1].amount_due - 1},"
                "2025-08-01T09:01:00+07:00,paid")
    rows.append("RF18539007547034,TXLOST,8000,2025-08-01T10:00:00+07:00,paid")
    rows.append("RF18539007547034,TXFAIL,8000,2025-08-01T10:00:00+07:00,failed")
    counts = world.recon.compare_channel_list(
        ("\n".join(rows) + "\n").encode(), channel="platform", first_day=dt.date(2025, 8, 1),
        last_day=dt.date(2025, 8, 1), actor="finance", request_id="cmp", now=T0)
    assert counts == {"matched": 1, "amount_mismatch": 1, "missing_at_channel": 1,
                      "missing_here": 1}
    outcomes = sorted(e.outcome for e in world.recon.exceptions())
    assert outcomes == ["channel_amount_mismatch", "channel_missing_at_channel",
                        "channel_missing_here"]


def test_bank_csv_statement_reconciles(world: World) -> None:
    pid = world.paid_payment(request_id="csv-payment-1")
    p = world.payments.get(pid)
    data = ("booking_date,value_date,reference,amount,direction,description,counter_account,"
            f"counter_name\n2025-08-01,2025-08-01,FT9,\"{p.amount_due:,}\",C,"
            f"CK {p.reference},0011,NGUYEN VAN A\n").encode()
    totals = world.recon.import_statement(data, fmt="csv", account=ACCOUNT, actor="f",
                                          request_id="csv", now=T0)
    assert totals["new_lines"] == 1
    summary = world.recon.reconcile(as_of=T0 + dt.timedelta(days=1), actor="f", run_id="csv")
    assert summary["counts"] == {"matched": 1, "paid_without_receipt": 1}


def test_a_refund_paid_out_settles_the_payable(world: World) -> None:
    pid = world.paid_payment(request_id="refund-out-1")
    world.payments.refund(caller="c", request_id="refund-out-req", payment_id=pid,
                          amount=20000, reason="x", now=T0, agency_code=None)
    d2 = dt.date(2025, 8, 2)
    world.recon.import_statement(statement(2, 0, [StatementLine(
        ACCOUNT, "FTOUT", 20000, False, d2, d2, "FTOUT", "", "hoan tien")]), fmt="camt053",
        actor="f", request_id="i", now=T0)
    world.recon.reconcile(as_of=T0 + dt.timedelta(days=1), actor="f", run_id="out")
    [debit] = [e for e in world.recon.exceptions() if e.outcome == "unexplained_debit"]
    world.recon.resolve(debit.id, action="refund_paid_out", actor="finance", request_id="r",
                        now=T0 + dt.timedelta(days=1))
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0
    assert tb.balance("REFUNDS_PAYABLE") == 0 and tb.balance("SUSPENSE") == 0
    assert tb.balance(f"BANK:{ACCOUNT}") == -20000


def test_overpaid_and_held_channel_money_settle_against_the_statement(world: World) -> None:
    # A VietQR transfer larger than due (excess held on the payment) and a platform callback
    # with a wrong amount (held as an exception) both reach the bank: both match, CLEARING
    # empties, and nothing is left unexplained on the statement.
    over = world.payments.create_payment(
        caller="c", request_id="req-over-1", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-over", payer=Payer("A"), channel="vietqr",
        now=T0)
    world.payments.open(over.id, channel_url="", actor="t", request_id="o", now=T0)
    world.payments.confirm(channel="vietqr", transaction_id="FT-OVER", reference=over.reference,
                           amount=over.amount_due + 6000, at=T0, success=True,
                           exact_amount=False, request_id="r", now=T0)
    wrong = world.payments.create_payment(
        caller="c", request_id="req-wrong-1", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-wrong", payer=Payer("A"), channel="platform",
        now=T0)
    world.payments.open(wrong.id, channel_url="", actor="t", request_id="o", now=T0)
    world.payments.confirm(channel="platform", transaction_id="PAY-WRONG",
                           reference=wrong.reference, amount=wrong.amount_due + 1, at=T0,
                           success=True, exact_amount=True, request_id="r", now=T0)
    world.receipts.issue_for_payment(over.id, now=T0)
    d1 = dt.date(2025, 8, 1)
    world.recon.import_statement(statement(1, 0, [
        StatementLine(ACCOUNT, "FT-OVER", over.amount_due + 6000, True, d1, d1, "FT-OVER", "",
                      over.reference),
        StatementLine(ACCOUNT, "PAY-WRONG", wrong.amount_due + 1, True, d1, d1, "PAY-WRONG", "",
                      wrong.reference)]), fmt="camt053", actor="f", request_id="i", now=T0)
    summary = world.recon.reconcile(as_of=T0 + dt.timedelta(days=1), actor="f", run_id="held")
    assert summary["counts"] == {"matched": 2}
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0
    assert tb.balance("CLEARING:vietqr") == 0 and tb.balance("CLEARING:platform") == 0
    assert tb.balance(f"BANK:{ACCOUNT}") == over.amount_due + 6000 + wrong.amount_due + 1
    # The wrong amount is still the officer's decision: held in SUSPENSE until resolved.
    assert tb.balance("SUSPENSE") == -(wrong.amount_due + 1)
