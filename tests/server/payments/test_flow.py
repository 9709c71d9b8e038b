from __future__ import annotations

import datetime as dt

import pytest

import payments.errors as pe
from payments.payments import Payer, PaymentState
from payments.receipts import check_gapless, document_digest
from server.payments.common import trial_balance
from server.payments.store import ConfirmOutcome
from tests.payments.support import HCM, T0, WARD
from tests.server.payments.conftest import World
from tests.support.pki import TestPki


def test_paid_payment_gets_one_receipt_per_collecting_body(world: World) -> None:
    pid = world.paid_payment()
    p = world.payments.get(pid)
    assert p.state is PaymentState.PAID and p.collected == p.amount_due == 220000
    issued = world.receipts.issue_for_payment(pid, now=T0)
    again = world.receipts.issue_for_payment(pid, now=T0)
    assert len(issued) == 2 and again == []
    receipts = world.receipts.for_payment(pid)
    by_body = {r.data.collector.agency_code: r.data for r in receipts}
    assert set(by_body) == {HCM, WARD}
    assert by_body[HCM].total == 100000 and by_body[WARD].total == 120000
    assert check_gapless([r.data.number for r in receipts])
    assert {r.data.series for r in receipts} == {"25T"}
    with world.db.read() as s:
        tb = trial_balance(s)
        from sqlalchemy import select

        from server.storage.audit import AuditEventRow
        events = s.execute(select(AuditEventRow.action, AuditEventRow.reason)).all()
    assert tb.difference == 0 and tb.total_debits > 0
    # Every transition is in the audit chain, with the receipts and the creation.
    assert ("payment.transition", "AWAITING_PAYMENT") in events
    assert ("payment.transition", "PAID") in events
    assert sum(1 for a, _ in events if a == "receipt.original") == 2


def test_request_id_replays_and_refuses_a_different_request(world: World) -> None:
    args = dict(caller="c", request_id="same-request-1", agency_code=HCM, province="79",
                procedure_code="2.000815", dossier_code="D1", payer=Payer("A"), channel="vietqr",
                now=T0)
    first = world.payments.create_payment(**args)  # type: ignore[arg-type]
    second = world.payments.create_payment(**args)  # type: ignore[arg-type]
    assert first.id == second.id
    with pytest.raises(pe.RequestIdReused):
        world.payments.create_payment(**{**args, "dossier_code": "D2"})  # type: ignore[arg-type]


def test_failed_refund_stays_failed(world: World) -> None:
    pid = world.paid_payment()
    with pytest.raises(pe.RefundExceedsCollected):
        world.payments.refund(caller="c", request_id="refund-too-much", payment_id=pid,
                              amount=10**6, reason="x", now=T0, agency_code=None)
    # The same request again is the same failure, even though nothing changed in between.
    with pytest.raises(pe.RefundExceedsCollected):
        world.payments.refund(caller="c", request_id="refund-too-much", payment_id=pid,
                              amount=10**6, reason="x", now=T0, agency_code=None)
    name = world.payments.refund(caller="c", request_id="refund-ok-1", payment_id=pid,
                                 amount=20000, reason="x", now=T0, agency_code=None)
    assert name.startswith(f"payments/{pid}/refunds/")
    assert world.payments.get(pid).state is PaymentState.PARTIALLY_REFUNDED


def test_duplicate_and_mismatched_callbacks(world: World) -> None:
    p = world.payments.create_payment(
        caller="c", request_id="req-mismatch", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-req-mismatch", payer=Payer("A"),
        channel="platform", now=T0)
    world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=T0)
    held = world.payments.confirm(channel="platform", transaction_id="T1", reference=p.reference,
                                  amount=p.amount_due + 1, at=T0, success=True,
                                  exact_amount=True, request_id="r", now=T0)
    assert held.outcome is ConfirmOutcome.HELD
    assert world.payments.get(p.id).state is PaymentState.AWAITING_PAYMENT
    ok = world.payments.confirm(channel="platform", transaction_id="T2", reference=p.reference,
                                amount=p.amount_due, at=T0, success=True, exact_amount=True,
                                request_id="r", now=T0)
    dup = world.payments.confirm(channel="platform", transaction_id="T2", reference=p.reference,
                                 amount=p.amount_due, at=T0, success=True, exact_amount=True,
                                 request_id="r", now=T0)
    assert (ok.outcome, dup.outcome) == (ConfirmOutcome.APPLIED, ConfirmOutcome.ALREADY_CONFIRMED)
    exceptions = world.recon.exceptions()
    assert [e.outcome for e in exceptions] == ["held_channel_money"]
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0 and tb.balance("SUSPENSE") == -(p.amount_due + 1)
    world.recon.resolve(exceptions[0].id, action="refund_to_sender", actor="finance",
                        request_id="res", now=T0)
    with world.db.read() as s:
        assert trial_balance(s).balance("SUSPENSE") == 0


def test_expiry_holds_partial_money(world: World) -> None:
    p = world.payments.create_payment(
        caller="c", request_id="req-expire", agency_code=HCM, province="79",
        procedure_code="1.000494", dossier_code="D-req-expire", payer=Payer("A"), channel="vietqr", now=T0)
    world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=T0)
    world.payments.confirm(channel="vietqr", transaction_id="FT1", reference=p.reference,
                           amount=50000, at=T0, success=True, exact_amount=False,
                           request_id="r", now=T0)
    assert world.payments.get(p.id).state is PaymentState.PARTIALLY_PAID
    assert world.payments.expire_due(now=T0 + dt.timedelta(hours=1)) == 1
    expired = world.payments.get(p.id)
    assert expired.state is PaymentState.EXPIRED and expired.held == 50000
    with world.db.read() as s:
        tb = trial_balance(s)
    assert tb.difference == 0 and tb.balance("OVERPAYMENTS") == -50000
    assert tb.balance("RECEIVABLES") == 0


def test_ledger_rows_cannot_be_changed(world: World) -> None:
    from sqlalchemy import text

    world.paid_payment()
    with pytest.raises(Exception, match="append-only"), world.db.write() as s:
        s.execute(text("UPDATE payments_ledger_postings SET debit = debit + 1"))


def test_corrections_are_new_documents_and_the_original_never_changes(world: World,
                                                                      pki: TestPki) -> None:
    from payments.fees import FeeKind
    from payments.receipts import ReceiptKind, ReceiptLine

    pid = world.paid_payment(request_id="req-corrections")
    world.receipts.issue_for_payment(pid, now=T0)
    originals = world.receipts.for_payment(pid)
    first = next(r for r in originals if r.data.collector.agency_code == HCM)
    xml_before = first.xml
    replacement = world.receipts.correct_idempotent(
        first.id, kind=ReceiptKind.REPLACEMENT,
        lines=(ReceiptLine("LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),),
        reason="Sai tên người nộp", actor="finance", request_id="correct-0001", now=T0)
    again = world.receipts.correct_idempotent(
        first.id, kind=ReceiptKind.REPLACEMENT,
        lines=(ReceiptLine("LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),),
        reason="Sai tên người nộp", actor="finance", request_id="correct-0001", now=T0)
    assert again.id == replacement.id
    assert replacement.data.number == 3 and replacement.data.related is not None
    assert replacement.data.related.number == first.data.number
    assert world.receipts.get(first.id).status == "replaced"
    assert world.receipts.get(first.id).xml == xml_before
    with pytest.raises(pe.FailedPrecondition):
        world.receipts.cancel(first.id, reason="x", actor="finance", request_id="c", now=T0)
    other = next(r for r in originals if r.data.collector.agency_code == WARD)
    adjustment = world.receipts.correct(
        other.id, kind=ReceiptKind.ADJUSTMENT,
        lines=(ReceiptLine("PTD", "Phí thẩm định hồ sơ", FeeKind.PHI, -20000),),
        reason="Thu thừa", actor="finance", request_id="adj", now=T0)
    assert adjustment.data.total == -20000 and world.receipts.get(other.id).status == "adjusted"
    notice = world.receipts.cancel(replacement.id, reason="Hủy theo yêu cầu", actor="finance",
                                   request_id="cancel", now=T0)
    assert b"<TBHuy>" in notice and world.receipts.get(replacement.id).status == "cancelled"
    assert check_gapless([n for ns in world.receipts.numbers().values() for n in ns])
    report = world.receipts.usage(start=T0.date(), end=T0.date())
    [line] = report.lines
    assert (line.first_number, line.last_number, line.used, line.cancelled) == (1, 4, 4, 1)
    assert line.total_collected == 100000 + 120000 - 20000
    # Every receipt, corrections included, carries a QR sealed by its own collecting body.
    from payments.receipts import verify_qr

    bundle = [pki.issuing.cert, *(s.certificate for s in world.seals.values())]
    for r in (*originals, replacement, adjustment):
        verified = verify_qr(r.qr_token, roots=[pki.root.cert], certificates=bundle, at=pki.now)
        assert (verified.claims.number, verified.claims.total) == (r.data.number, r.data.total)
        assert verified.claims.agency_code == r.data.collector.agency_code
        assert verified.claims.xml_sha256_hex == document_digest(r.xml)


def test_a_typo_in_the_transfer_text_still_finds_the_payment(world: World) -> None:
    from payments.channels import create_reference

    p = world.payments.create_payment(
        caller="c", request_id="req-typo-ref", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="D-req-typo-ref", payer=Payer("A"), channel="vietqr", now=T0)
    ref = p.reference
    # A changed digit is always caught by the check digits (a letter slips through 1 in 97).
    typo = ref[:3] + ("7" if ref[3] != "7" else "8") + ref[4:]
    assert world.payments.resolve_reference(f"CK {typo} le phi") == ref
    assert world.payments.resolve_reference(f"{ref} le phi") == ref
    stranger = create_reference("SOMEONEELSE")
    assert world.payments.resolve_reference(f"{stranger}") == stranger
    assert world.payments.resolve_reference("chuyen tien") == ""


def test_a_dossier_is_not_charged_twice(world: World) -> None:
    first = world.payments.create_payment(
        caller="c", request_id="dossier-first", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="H29-TWICE", payer=Payer("A"), channel="vietqr",
        now=T0)
    with pytest.raises(pe.Conflict) as err:
        world.payments.create_payment(
            caller="c", request_id="dossier-second", agency_code=HCM, province="79",
            procedure_code="2.000815", dossier_code="H29-TWICE", payer=Payer("A"),
            channel="platform", now=T0)
    assert err.value.reason == "DOSSIER_ALREADY_HAS_PAYMENT"
    assert err.value.metadata["payment"] == first.name
    # Once the first payment expired, the dossier can be paid again.
    world.payments.expire_due(now=T0 + dt.timedelta(hours=1))
    again = world.payments.create_payment(
        caller="c", request_id="dossier-third", agency_code=HCM, province="79",
        procedure_code="2.000815", dossier_code="H29-TWICE", payer=Payer("A"), channel="vietqr",
        now=T0 + dt.timedelta(hours=1))
    assert again.id != first.id


def test_a_cancelled_or_replaced_correction_is_closed(world: World) -> None:
    from payments.fees import FeeKind
    from payments.receipts import ReceiptKind, ReceiptLine

    pid = world.paid_payment(request_id="req-closed-correction")
    world.receipts.issue_for_payment(pid, now=T0)
    first = next(r for r in world.receipts.for_payment(pid) if r.data.total == 100000)
    lines = (ReceiptLine("LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),)
    replacement = world.receipts.correct(first.id, kind=ReceiptKind.REPLACEMENT, lines=lines,
                                         reason="Sai tên", actor="f", request_id="c1", now=T0)
    second = world.receipts.correct(replacement.id, kind=ReceiptKind.REPLACEMENT, lines=lines,
                                    reason="Sai địa chỉ", actor="f", request_id="c2", now=T0)
    assert world.receipts.get(replacement.id).status == "replaced"
    with pytest.raises(pe.FailedPrecondition):  # a replaced replacement is closed
        world.receipts.correct(replacement.id, kind=ReceiptKind.REPLACEMENT, lines=lines,
                               reason="x", actor="f", request_id="c3", now=T0)
    world.receipts.cancel(second.id, reason="Hủy", actor="f", request_id="c4", now=T0)
    with pytest.raises(pe.FailedPrecondition):  # and so is a cancelled one
        world.receipts.cancel(second.id, reason="again", actor="f", request_id="c5", now=T0)
    assert check_gapless([n for ns in world.receipts.numbers().values() for n in ns])


def test_numbering_starts_at_1_on_1_january_vietnam_time(world: World) -> None:
    last_of_2025 = dt.datetime(2025, 12, 31, 16, 59, 59, tzinfo=dt.UTC)  # 23:59:59 in Vietnam
    first_of_2026 = dt.datetime(2025, 12, 31, 17, 0, 0, tzinfo=dt.UTC)  # 00:00:00 on 1 January
    labels = []
    for i, at in enumerate([T0, last_of_2025, first_of_2026, first_of_2026]):
        pid = world.paid_payment(request_id=f"req-new-year-{i}", at=at, procedure="2.000815")
        world.receipts.issue_for_payment(pid, now=at)
        labels += [r.data.label for r in world.receipts.for_payment(pid)]
    assert labels == ["EBL01-25T-0000001", "EBL01-25T-0000002", "EBL01-26T-0000001",
                      "EBL01-26T-0000002"]
    assert {k: sorted(v) for k, v in world.receipts.numbers().items()} == {
        ("EBL01", "25T", 2025): [1, 2],
        ("EBL01", "26T", 2026): [1, 2]}


def test_a_batch_signed_on_two_threads(world: World, pki: TestPki) -> None:
    """With ``signing_threads``, the batch is numbered in order first and only the signing runs
    side by side: every receipt's XML verifies, its QR is its own, the numbers have no gap."""
    from payments.receipts import verify_qr
    from payments.receipts.verification import verify_receipt
    from server.payments.receipts_store import ReceiptsStore
    from tests.payments.support import ORGANISATIONS, signers

    with pytest.raises(ValueError):
        ReceiptsStore(world.db, organisations=ORGANISATIONS, signer_for=signers(pki).signer_for,
                      signing_threads=0)
    store = ReceiptsStore(world.db, organisations=ORGANISATIONS,
                          signer_for=signers(pki).signer_for, seal_for=world.seals.get,
                          signing_threads=2)
    paid = [world.paid_payment(request_id=f"threads-{i}") for i in range(5)]
    issued = store.issue_batch(paid, now=T0)
    assert len(issued) == 10 and store.issue_batch(paid, now=T0) == []
    receipts = [store.get(i) for i in issued]
    numbers = [r.data.number for r in receipts]
    assert numbers == list(range(1, 11))
    bundle = [pki.issuing.cert, *(s.certificate for s in world.seals.values())]
    for r in receipts:
        verified = verify_receipt(r.xml, trust=[pki.root.cert], at=pki.now)
        assert (verified.receipt.number, verified.total) == (r.data.number, r.data.total)
        assert verified.signer_agency_code == r.data.collector.agency_code
        claims = verify_qr(r.qr_token, roots=[pki.root.cert], certificates=bundle,
                           at=pki.now).claims
        assert (claims.number, claims.xml_sha256_hex) == (r.data.number, document_digest(r.xml))
