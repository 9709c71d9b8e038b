"""Property tests of the pure library: VietQR payloads against an independent decoder, ISO 11649
check digits, amounts in words, and the payment model's ledger invariants."""

from __future__ import annotations

import datetime as dt

import qr_pay
from hypothesis import given, settings
from hypothesis import strategies as st

import payments.errors as pe
from payments.accounts import CollectionAccount
from payments.channels import (
    corrections,
    create_reference,
    is_valid_reference,
    parse_vietqr,
    vietqr_for_payment,
)
from payments.fees import quote
from payments.ledger import trial_balance
from payments.money import transliterate
from payments.payments import (
    PAID_STATES,
    Payer,
    PaymentState,
    apply_credit,
    expire_payment,
    new_payment,
    open_payment,
    refund_payment,
)
from tests.payments.support import T0, catalogue

VIETNAMESE = st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọ"
                              "ồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵĐÂÊÔƠƯ 0123456789-.,/", max_size=80)
ACCOUNT = CollectionAccount("000.00.00.H29", "970415", "113000012345", "UBND")


@given(amount=st.integers(1, 9_999_999_999_999), body=st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=21), text=VIETNAMESE)
def test_vietqr_round_trips_through_an_independent_decoder(amount: int, body: str,
                                                            text: str) -> None:
    reference = create_reference(body)
    payload = vietqr_for_payment(ACCOUNT, amount=amount, reference=reference, description=text)
    assert payload.isascii()
    ours = parse_vietqr(payload)
    theirs = qr_pay.decode(payload)
    assert theirs["transaction_amount"] == str(amount) == str(ours.amount)
    assert theirs["bill_number"] == reference == ours.bill_number
    assert theirs["purpose_of_transaction"] == ours.purpose
    ascii_text = transliterate(text)
    assert ours.purpose == (reference + (" " + ascii_text if ascii_text else ""))[:50].rstrip()


@given(body=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=21),
       position=st.integers(4, 24), replacement=st.sampled_from("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"))
def test_one_changed_character_breaks_the_check_digits(body: str, position: int,
                                                       replacement: str) -> None:
    reference = create_reference(body)
    assert is_valid_reference(reference)
    if position >= len(reference) or reference[position] == replacement:
        return
    typo = reference[:position] + replacement + reference[position + 1:]
    if reference[position].isdigit() and replacement.isdigit():
        assert not is_valid_reference(typo)  # MOD 97-10 catches every single-digit error
    if not is_valid_reference(typo):  # letters (two digits each) slip through about 1 in 97
        assert list(corrections(typo, {reference}.__contains__)) == [reference]


@settings(max_examples=200)
@given(ops=st.lists(st.tuples(st.sampled_from(["pay", "refund", "expire"]),
                              st.integers(1, 400_000)), max_size=12),
       procedure=st.sampled_from(["1.000494", "2.000815", "1.001612"]))
def test_payment_model_keeps_the_ledger_balanced_and_refunds_bounded(
        ops: list[tuple[str, int]], procedure: str) -> None:
    q = quote(catalogue(), procedure, on=dt.date(2025, 8, 1), province="79")
    p = new_payment("pprop00001", q, agency_code="000.00.00.H29", dossier_code="D",
                    payer=Payer("A"), reference=create_reference("PPROP00001"), channel="vietqr",
                    now=T0, ttl=dt.timedelta(minutes=30))
    fx = open_payment(p, now=T0, actor="t")
    p, postings = fx.payment, [x for tx in fx.ledger for x in tx.postings]
    paid_transitions = 0
    for i, (op, amount) in enumerate(ops):
        now = T0 + dt.timedelta(minutes=i)
        try:
            if op == "pay":
                fx = apply_credit(p, amount, source="CLEARING:vietqr", key=f"k{i}", now=now,
                                  actor="t")
            elif op == "refund":
                fx = refund_payment(p, amount, key=f"r{i}", now=now, actor="t")
            else:
                fx = expire_payment(p, now=p.expires_at, actor="t")
        except (pe.RefundExceedsCollected, pe.PaymentExpired, pe.InvalidTransition,
                pe.InvalidInput):
            continue
        p = fx.payment
        postings += [x for tx in fx.ledger for x in tx.postings]
        paid_transitions += sum(t.to_state in (PaymentState.PAID, PaymentState.OVERPAID)
                                and t.from_state not in PAID_STATES for t in fx.transitions)
        tb = trial_balance(postings)
        assert tb.difference == 0
        assert 0 <= p.refunded <= p.collected
        assert p.held >= 0
        # Receivables never go negative: money beyond what is due is held, not "owed back".
        assert tb.balance("RECEIVABLES") >= 0
    assert paid_transitions <= 1  # becoming paid happens once: one receipt
