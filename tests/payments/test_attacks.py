"""Attacks on the inputs the library reads: each must fail (and say nothing useful)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import payments.errors as pe
from payments.accounts import CollectionAccount
from payments.channels import BankSimulator, create_reference, parse_bank_notification
from payments.channels import national_platform as np
from payments.channels.vietqr import sign_bank_notification, vietqr_for_payment
from payments.fees import load_catalogue_yaml
from payments.receipts import parse_receipt_xml
from payments.reconcile import parse_camt053
from tests.payments.support import T0

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = CollectionAccount("000.00.00.H29", "970415", "113000012345", "UBND")
SECRET = b"bank-secret"


def notification(**change: object) -> tuple[bytes, str]:
    bank = BankSimulator(SECRET)
    payload = vietqr_for_payment(ACCOUNT, amount=8000, reference=create_reference("X1"),
                                 description="le phi")
    body, headers = bank.notification(bank.pay_qr(payload, at=T0))
    data = json.loads(body)
    data.update(change)
    forged = json.dumps(data).encode()
    return forged, sign_bank_notification(forged, SECRET)


@pytest.mark.parametrize("change,cause", [
    ({"accountNumber": "999999999"}, "WRONG_BENEFICIARY"),
    ({"bankBin": "970436"}, "WRONG_BENEFICIARY"),
    ({"currency": "USD"}, "BAD_CURRENCY"),
    ({"amount": -8000}, "BAD_AMOUNT"),
    ({"amount": 8000.5}, "BAD_AMOUNT"),
    ({"transactionTime": "2025-07-01T09:00:00+07:00"}, "OUTSIDE_TIME_WINDOW"),
])
def test_correctly_signed_but_wrong_notifications_are_refused(change: dict[str, object],
                                                              cause: str) -> None:
    body, signature = notification(**change)
    with pytest.raises(pe.CallbackRejected) as err:
        parse_bank_notification(body, signature, SECRET, account=ACCOUNT, now=T0)
    assert err.value.detail == cause and "verified" in str(err.value)


def test_forged_or_replayed_platform_callbacks_are_refused() -> None:
    msg = np.sign_message({"LoaiBanTin": "CONFIRM", "MaLoi": "00", "MaDoiTac": "P",
                           "MaThamChieu": "R", "SoTien": 1000, "MaTienTe": "VND",
                           "MaGiaoDich": "T1", "MaNganHang": "970415",
                           "ThoiGianGD": np.format_time(T0), "ThongTinGiaoDich": ""},
                          "CONFIRM", "secret")
    assert np.parse_callback(msg, secret="secret", partner_code="P", now=T0).amount == 1000
    attempts = [
        ({**msg, "SoTien": 100000}, T0, "BAD_SIGNATURE"),
        (np.sign_message({**msg, "MaTienTe": "USD"}, "CONFIRM", "guess"), T0, "BAD_SIGNATURE"),
        (msg, T0 + dt.timedelta(days=1), "OUTSIDE_TIME_WINDOW"),  # replayed a day later
        (np.sign_message({**msg, "MaDoiTac": "OTHER"}, "CONFIRM", "secret"), T0,
         "WRONG_PARTNER"),
    ]
    for message, now, cause in attempts:
        with pytest.raises(pe.CallbackRejected) as err:
            np.parse_callback(message, secret="secret", partner_code="P", now=now)
        assert err.value.detail == cause


def test_camt053_external_entities_are_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    data = (FIXTURES / "camt053_day1.xml").read_bytes()
    evil = data.replace(b'<?xml version="1.0" encoding="UTF-8"?>',
                        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE Document ['
                        b'<!ENTITY x SYSTEM "file://' + str(secret).encode() + b'">]>', 1)
    evil = evil.replace(b"Chuyen tien khong ghi noi dung", b"&x;", 1)
    statements = parse_camt053(evil)
    texts = [line.remittance for s in statements for line in s.lines]
    assert not any("TOP-SECRET" in t for t in texts)


def test_receipt_xml_external_entities_are_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = (b'<?xml version="1.0"?><!DOCTYPE BLai [<!ENTITY x SYSTEM "file://' +
           str(secret).encode() + b'">]><BLai><DLBLai><TTChung><KHMSBLai>EBL01</KHMSBLai>'
           b'<KHBLai>25T</KHBLai><SBLai>0000001</SBLai><TGLap>2025-08-01T09:00:00</TGLap>'
           b'<HTTToan>x</HTTToan></TTChung><NDBLai><TCThu><Ten>&x;</Ten></TCThu><NNop><Ten>A'
           b'</Ten></NNop></NDBLai></DLBLai></BLai>')
    try:
        parsed = parse_receipt_xml(doc)
    except pe.InvalidInput:
        return
    assert "TOP-SECRET" not in parsed.collector.name


def test_yaml_catalogue_refuses_python_objects() -> None:
    evil = b"procedures: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(pe.CatalogueError):
        load_catalogue_yaml(evil)


def test_prefixed_commented_and_plain_camt053_read_the_same() -> None:
    plain = (FIXTURES / "camt053_day1.xml").read_bytes()
    ns = b'xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"'
    prefixed = plain.replace(ns, ns.replace(b"xmlns=", b"xmlns:c="))
    prefixed = prefixed.replace(b"</", b"</c:").replace(b"<", b"<c:").replace(
        b"<c:/c:", b"</c:").replace(b"<c:?xml", b"<?xml")
    commented = plain.replace(b"<Ntry>", b"<!-- entry --><Ntry>", 1)
    expected = parse_camt053(plain)
    for variant in (prefixed, commented):
        got = parse_camt053(variant)
        assert [s.lines for s in got] == [s.lines for s in expected]
        assert [(s.account, s.opening, s.closing) for s in got] == \
            [(s.account, s.opening, s.closing) for s in expected]


def test_correctly_signed_but_wrong_platform_callbacks_are_refused() -> None:
    base = {"LoaiBanTin": "CONFIRM", "MaLoi": "00", "MaDoiTac": "P", "MaThamChieu": "R",
            "SoTien": 1000, "MaTienTe": "VND", "MaGiaoDich": "T1", "MaNganHang": "970415",
            "ThoiGianGD": np.format_time(T0), "ThongTinGiaoDich": ""}
    for change, cause in (({"MaTienTe": "USD"}, "BAD_CURRENCY"),
                          ({"SoTien": 0}, "BAD_AMOUNT"), ({"SoTien": "1000.5"}, "BAD_AMOUNT"),
                          ({"SoTien": True}, "BAD_AMOUNT"), ({"MaGiaoDich": ""}, "MALFORMED"),
                          ({"LoaiBanTin": "INIT"}, "WRONG_MESSAGE_TYPE"),
                          ({"ThoiGianGD": np.format_time(T0 - dt.timedelta(minutes=16))},
                           "OUTSIDE_TIME_WINDOW")):
        msg = np.sign_message({**base, **change}, "CONFIRM", "secret")
        with pytest.raises(pe.CallbackRejected) as err:
            np.parse_callback(msg, secret="secret", partner_code="P", now=T0)
        assert err.value.detail == cause


def test_correctly_signed_but_wrong_gateway_ipns_are_refused() -> None:
    from payments.channels import GatewaySimulator, vnpay

    url = vnpay.payment_url("https://gw.test/pay", tmn_code="TMN1", secret="k", reference="R1",
                            amount=8000, description="x", return_url="https://x/r",
                            ip="127.0.0.1", at=T0, expires=T0 + dt.timedelta(minutes=15))
    ipn = GatewaySimulator("TMN1", "k").ipn(url, now=T0)
    assert vnpay.parse_ipn(ipn, secret="k", tmn_code="TMN1", now=T0).amount == 8000
    late = T0 + dt.timedelta(minutes=16)
    for change, now, window, cause in (
            ({"vnp_CurrCode": "USD"}, T0, None, "BAD_CURRENCY"),
            ({"vnp_Amount": "800050"}, T0, None, "MALFORMED"),  # not whole đồng
            ({"vnp_TxnRef": ""}, T0, None, "MALFORMED"),
            ({"vnp_TransactionNo": ""}, T0, None, "MALFORMED"),
            ({}, late, dt.timedelta(minutes=15), "OUTSIDE_TIME_WINDOW"),
            ({}, T0 + dt.timedelta(hours=1), None, "OUTSIDE_TIME_WINDOW")):
        params = {k: v for k, v in {**ipn, **change}.items() if k != "vnp_SecureHash"}
        params["vnp_SecureHash"] = vnpay.secure_hash(params, "k")
        kwargs = {"window": window} if window else {}
        with pytest.raises(pe.CallbackRejected) as err:
            vnpay.parse_ipn(params, secret="k", tmn_code="TMN1", now=now, **kwargs)
        assert err.value.detail == cause, change
    with pytest.raises(pe.CallbackRejected) as err:  # another merchant's IPN
        vnpay.parse_ipn(ipn, secret="k", tmn_code="TMN2", now=T0)
    assert err.value.detail == "WRONG_BENEFICIARY"
