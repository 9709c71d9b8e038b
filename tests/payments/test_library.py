from __future__ import annotations

import datetime as dt
import io
import subprocess
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

import payments.errors as pe
from payments.channels import GatewaySimulator, PlatformSimulator, create_reference, vnpay
from payments.channels import national_platform as np
from payments.fees import FeeKind, load_catalogue_csv, load_catalogue_yaml, quote
from payments.ledger import Account, reverse, transaction, trial_balance
from payments.money import amount_in_words, check_amount, transliterate
from payments.reconcile import (
    ExpectedPayment,
    Outcome,
    ReportBounds,
    StatementLine,
    reconcile,
    report_csv,
    report_pdf,
    report_xlsx,
)
from payments.webhooks import event_body, sign_webhook
from tests.payments.support import T0, catalogue

FONTS = Path("/usr/share/fonts/truetype/dejavu")


def test_money_is_integer_dong() -> None:
    assert amount_in_words(150000) == "Một trăm năm mươi nghìn đồng"
    assert amount_in_words(21) == "Hai mươi mốt đồng"
    assert transliterate("Lệ phí Đà Nẵng") == "Le phi Da Nang"
    for bad in (1.0, True, -1, "5"):
        with pytest.raises(pe.InvalidAmount):
            check_amount(bad)


def test_quotes_follow_dates_provinces_and_circular_64() -> None:
    c = catalogue()
    assert quote(c, "1.001612", on=dt.date(2025, 6, 30), province="01").total == 100000
    assert quote(c, "1.001612", on=dt.date(2025, 7, 1), province="01").total == 50000
    assert quote(c, "1.001612", on=dt.date(2026, 12, 31), province="01").total == 50000
    assert quote(c, "1.001612", on=dt.date(2027, 1, 1), province="01").total == 100000
    hcm = quote(c, "1.000494.000.00.00.H29.01", on=dt.date(2025, 8, 1), province="79")
    other = quote(c, "1.000494", on=dt.date(2025, 8, 1), province="01")
    assert (hcm.total, other.total) == (220000, 195000)
    assert hcm.by_kind() == {FeeKind.LE_PHI: 100000, FeeKind.PHI: 120000}
    with pytest.raises(pe.UnknownProcedure):
        quote(c, "9.999999", on=dt.date(2025, 8, 1), province="79")


def test_catalogue_errors_name_the_line() -> None:
    bad = (b"procedures:\n  - code: '1.000494'\n    name: X\n    items:\n      - code: A\n"
           b"        name: B\n        kind: phi\n        levels:\n"
           b"          - {amount: 1.5, from: 2020-01-01}\n")
    with pytest.raises(pe.CatalogueError) as err:
        load_catalogue_yaml(bad, source="fees.yaml")
    assert err.value.line == 9 and "fees.yaml, line 9" in str(err.value)
    csv_bad = (b"procedure_code,procedure_name,item_code,item_name,kind,amount,valid_from,valid_to,"
               b"province,collector\n1.000494,X,A,B,phi,10,2020-01-01,,,\n"
               b"1.000494,X,A,B,phi,10,2020-13-01,,,\n")
    with pytest.raises(pe.CatalogueError) as err:
        load_catalogue_csv(csv_bad)
    assert err.value.line == 3


def test_ledger_refuses_unbalanced_and_reverses() -> None:
    with pytest.raises(pe.UnbalancedTransaction):
        transaction("k", T0, "x", {Account.RECEIVABLES: 10}, {Account.SUSPENSE: 9})
    tx = transaction("k", T0, "x", {Account.RECEIVABLES: 10}, {Account.SUSPENSE: 10})
    tb = trial_balance([*tx.postings, *reverse(tx, key="k2", at=T0).postings])
    assert tb.difference == 0 and all(v == 0 for v in tb.balances.values())


def test_platform_messages_hash_and_verify() -> None:
    sim = PlatformSimulator("P1", "s3cret")
    msg = np.query_request("P1", "RF18539007547034", T0, "s3cret")
    fields = "|".join(str(msg[k]) for k in np.HASH_FIELDS["QUERY"])
    import hashlib

    assert msg["MaXacThuc"] == hashlib.sha256(f"{fields}|s3cret".encode()).hexdigest()
    assert sim.handle_query(msg, now=T0)["MaLoi"] == "01"
    from payments.channels.simulators import _PlatformPayment

    sim.payments["R1"] = _PlatformPayment({"SoTien": 1000, "MaThamChieu": "R1"})
    callback = sim.pay("R1", now=T0)
    parsed = np.parse_callback(callback, secret="s3cret", partner_code="P1", now=T0)
    assert (parsed.amount, parsed.success) == (1000, True)
    for tampered, cause in (({**callback, "SoTien": 999}, "BAD_SIGNATURE"),
                            (callback, "OUTSIDE_TIME_WINDOW")):
        with pytest.raises(pe.CallbackRejected) as err:
            np.parse_callback(tampered, secret="s3cret", partner_code="P1",
                              now=T0 + (dt.timedelta(hours=1) if tampered is callback else
                                        dt.timedelta()))
        assert err.value.detail == cause and str(err.value) == "the message could not be verified"


def test_gateway_amounts_are_x100_at_the_edge_only() -> None:
    url = vnpay.payment_url("https://gw.test/pay", tmn_code="TMN1", secret="k", reference="R1",
                            amount=150000, description="Lệ phí", return_url="https://x/r",
                            ip="127.0.0.1", at=T0, expires=T0 + dt.timedelta(minutes=15))
    assert "vnp_Amount=15000000" in url
    sim = GatewaySimulator("TMN1", "k")
    ipn = sim.ipn(url, now=T0)
    n = vnpay.parse_ipn(ipn, secret="k", tmn_code="TMN1", now=T0)
    assert (n.amount, n.reference, n.success) == (150000, "R1", True)
    with pytest.raises(pe.CallbackRejected):
        vnpay.parse_ipn({**ipn, "vnp_Amount": "100"}, secret="k", tmn_code="TMN1", now=T0)
    with pytest.raises(pe.CallbackRejected):
        vnpay.parse_ipn(ipn, secret="k", tmn_code="OTHER", now=T0)


def test_webhooks_verify_with_the_reference_library() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = event_body("payment.paid", T0, {"payment": "payments/abc"})
    headers = sign_webhook(secret, "msg_1", dt.datetime.now(dt.UTC), body)
    assert Webhook(secret).verify(body, headers)["type"] == "payment.paid"
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"abc", b"abd"), headers)


def line(key: str, amount: int, text: str, day: int = 1, credit: bool = True) -> StatementLine:
    return StatementLine("113", key, amount, credit, dt.date(2025, 8, day), None, key, "", text)


def test_matching_split_combined_duplicate_and_strangers() -> None:
    r = [create_reference(f"P{i}") for i in range(6)]
    exp = [ExpectedPayment(f"p{i}", r[i], 100000, T0, (f"GW{i}",) if i == 5 else ())
           for i in range(6)]
    lines = [
        line("L1", 60000, f"{r[0]} phan 1"), line("L2", 40000, f"{r[0]} phan 2"),  # split
        line("L3", 200000, f"{r[1]} {r[2]}"),  # combined
        line("L4", 100000, f"{r[3]}"), line("L5", 100000, f"{r[3]} lan 2"),  # duplicate
        line("L6", 100000, create_reference("NOTOURS")),  # stranger
        line("GW5", 100000, "settlement"),  # bank reference
        line("L7", 5000, "fee", credit=False),
    ]
    result = reconcile(lines, exp, as_of=T0 + dt.timedelta(days=5))
    by = result.by_outcome()
    shapes = sorted(i.shape for i in by[Outcome.MATCHED])
    assert shapes == ["combined", "one_to_one", "one_to_one", "split"]
    assert [i.line_keys for i in by[Outcome.DUPLICATE]] == [("L5",)]
    assert by[Outcome.MONEY_WITHOUT_PAYMENT][0].note.startswith("a valid creditor reference")
    assert [i.payment_ids for i in by[Outcome.PAYMENT_WITHOUT_MONEY]] == [("p4",)]
    assert len(by[Outcome.UNEXPLAINED_DEBIT]) == 1
    early = reconcile([], exp[:1], as_of=T0 + dt.timedelta(hours=1))
    assert early.items[0].outcome is Outcome.AWAITING_SETTLEMENT


def test_reports_state_their_bounds(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from payments.receipts.pdf import Fonts

    items = reconcile([line("L1", 1000, "x")], [], as_of=T0).items
    bounds = ReportBounds(dt.date(2025, 8, 1), dt.date(2025, 8, 1), T0, "UBND Phường Bến Thành")
    text = report_csv(items, bounds).decode()
    assert "2025-07-31T17:00:00Z" in text and "money_without_payment" in text
    wb = load_workbook(io.BytesIO(report_xlsx(items, bounds)))
    assert wb.sheetnames == ["Tong hop", "Chi tiet", "Ngoai le"]
    detail = wb["Chi tiet"]
    assert [c.value for c in detail[1]] == ["Kết quả", "Số tiền (đồng)", "Cách đối chiếu",
                                            "Hình thức", "Số tham chiếu ngân hàng",
                                            "Số khoản thu", "Ghi chú"]
    assert detail["A2"].value == "Tiền chưa rõ khoản" and detail["B2"].value == 1000
    assert detail["B2"].number_format == "#,##0"
    assert detail.freeze_panes == "A2" and detail.auto_filter.ref == "A1:G2"
    fonts = Fonts((FONTS / "DejaVuSans.ttf").read_bytes(), (FONTS / "DejaVuSans-Bold.ttf").read_bytes())
    (tmp_path / "r.pdf").write_bytes(report_pdf(items, bounds, fonts=fonts))
    out = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True,
                         text=True, check=True).stdout
    assert "BÁO CÁO ĐỐI SOÁT" in out and "Tiền chưa rõ khoản" in out


def test_amount_mismatches_one_to_one_split_and_combined() -> None:
    r = [create_reference(f"M{i}") for i in range(4)]
    exp = [ExpectedPayment(f"m{i}", r[i], 100000, T0) for i in range(4)]
    lines = [
        line("S1", 90000, f"{r[0]}"),  # short
        line("S2", 60000, f"{r[1]} phan 1"), line("S3", 60000, f"{r[1]} phan 2"),  # split, over
        line("S4", 150000, f"{r[2]} {r[3]}"),  # combined, short
    ]
    by = reconcile(lines, exp, as_of=T0 + dt.timedelta(days=5)).by_outcome()
    assert Outcome.MATCHED not in by
    got = sorted((i.shape, i.amount, i.line_keys, i.payment_ids)
                 for i in by[Outcome.AMOUNT_MISMATCH])
    assert got == [("combined", 150000, ("S4",), ("m2", "m3")),
                   ("one_to_one", 90000, ("S1",), ("m0",)),
                   ("split", 120000, ("S2", "S3"), ("m1",))]
