"""Simulators of the outside parties of each channel, speaking their real wire formats.

They stand in for a bank (a citizen scans our VietQR and transfers; the bank notifies the account
holder and lists the transfer on the day's statement), the national payment platform (INIT returns
a payment URL; the citizen pays; the platform sends the confirmation callback; QUERY answers) and a
VNPay-style gateway (the payment URL; the IPN). Tests and the demo drive them; nothing here is
used in production paths.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from payments.channels import national_platform as np
from payments.channels.emvco_qr import parse_vietqr
from payments.channels.vietqr import BankNotification, sign_bank_notification
from payments.channels.vnpay import secure_hash, to_gateway_amount
from payments.errors import CallbackRejected, InvalidInput
from payments.money import VN_TZ

__all__ = ["BankSimulator", "BankTransfer", "GatewaySimulator", "PlatformSimulator"]


@dataclass(frozen=True, slots=True)
class BankTransfer:
    """A transfer the bank simulator made (what a bank app would send after scanning a VietQR code)."""
    transaction_id: str
    bank_bin: str
    account_number: str
    amount: int
    description: str
    at: dt.datetime
    counter_account: str
    counter_name: str


@dataclass
class BankSimulator:
    """A bank holding collection accounts: transfers arrive from VietQR scans."""

    secret: bytes
    transfers: list[BankTransfer] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def pay_qr(self, payload: str, *, at: dt.datetime, payer_name: str = "NGUYEN VAN A",
               payer_account: str = "0011001234567", amount: int | None = None,
               description: str | None = None) -> BankTransfer:
        """What a banking app does with a scanned payload: check it (CRC included), let the payer
        confirm (optionally changing the amount or text, as people do), and transfer."""
        qr = parse_vietqr(payload)
        value = amount if amount is not None else qr.amount
        if value is None or value <= 0:
            raise InvalidInput("the payer must enter an amount for a static QR")
        local = at.astimezone(VN_TZ)
        transfer = BankTransfer(f"FT{local:%y%j}{next(self._ids):08d}", qr.bank_bin, qr.account,
                                value, qr.purpose if description is None else description,
                                at, payer_account, payer_name)
        self.transfers.append(transfer)
        return transfer

    def notification(self, transfer: BankTransfer) -> tuple[bytes, dict[str, str]]:
        body = BankNotification(transfer.transaction_id, transfer.bank_bin,
                                transfer.account_number, transfer.amount, "VND",
                                transfer.description, transfer.at, transfer.counter_account,
                                transfer.counter_name).to_json()
        return body, {"X-Bank-Signature": sign_bank_notification(body, self.secret),
                      "Content-Type": "application/json"}


@dataclass
class _PlatformPayment:
    init: Mapping[str, Any]
    state: str = "PENDING"  # PENDING | PAID | FAILED
    transaction_id: str = ""
    paid_at: dt.datetime | None = None


@dataclass
class PlatformSimulator:
    """The national payment platform, version 1.0.6."""

    partner_code: str
    secret: str
    base_url: str = "https://thanhtoan.example.invalid"
    payments: dict[str, _PlatformPayment] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def handle_init(self, message: Mapping[str, Any], *, now: dt.datetime) -> dict[str, Any]:
        if not np.verify_message(message, "INIT", self.secret) or \
                message.get("MaDoiTac") != self.partner_code:
            answer = {"MaLoi": "97", "MaDoiTac": self.partner_code,
                      "MaThamChieu": message.get("MaThamChieu", ""), "UrlThanhToan": "",
                      "ThoiGianGD": np.format_time(now)}
            return np.sign_message(answer, "INIT_RESPONSE", self.secret)
        info = message.get("ThongTinBienLai", {})
        lines = info.get("PhiLePhi", []) if isinstance(info, Mapping) else []
        if sum(int(x.get("SoTien", 0)) for x in lines) != int(message.get("SoTien", -1)):
            code = "04"
        else:
            code = "00"
            self.payments.setdefault(str(message["MaThamChieu"]), _PlatformPayment(message))
        answer = {"MaLoi": code, "MaDoiTac": self.partner_code,
                  "MaThamChieu": message.get("MaThamChieu", ""),
                  "UrlThanhToan": f"{self.base_url}/pay/{message.get('MaThamChieu', '')}"
                  if code == "00" else "", "ThoiGianGD": np.format_time(now)}
        return np.sign_message(answer, "INIT_RESPONSE", self.secret)

    def pay(self, reference: str, *, now: dt.datetime, success: bool = True,
            amount: int | None = None) -> dict[str, Any]:
        """The citizen completes (or abandons) payment; returns the signed callback message."""
        payment = self.payments[reference]
        if not payment.transaction_id:
            payment.transaction_id = f"PAY{now.astimezone(VN_TZ):%Y%m%d}{next(self._ids):06d}"
        payment.state = "PAID" if success else "FAILED"
        payment.paid_at = now
        message = {
            "LoaiBanTin": "CONFIRM", "MaLoi": "00" if success else "11",
            "MaDoiTac": self.partner_code, "MaThamChieu": reference,
            "SoTien": amount if amount is not None else int(payment.init["SoTien"]),
            "MaTienTe": "VND", "MaGiaoDich": payment.transaction_id,
            "MaNganHang": str(payment.init.get("MaNganHang") or "970415"),
            "ThoiGianGD": np.format_time(now),
            "ThongTinGiaoDich": str(payment.init.get("ThongTinGiaoDich", "")),
        }
        return np.sign_message(message, "CONFIRM", self.secret)

    def check_answer(self, answer: Mapping[str, Any]) -> str:
        if not np.verify_message(answer, "CONFIRM_ANSWER", self.secret):
            raise CallbackRejected("BAD_SIGNATURE")
        return str(answer.get("MaLoi", ""))

    def handle_query(self, message: Mapping[str, Any], *, now: dt.datetime) -> dict[str, Any]:
        if not np.verify_message(message, "QUERY", self.secret):
            answer: dict[str, Any] = {"MaLoi": "97", "MaDoiTac": self.partner_code,
                                      "MaThamChieu": message.get("MaThamChieu", ""),
                                      "TrangThaiGD": "", "SoTien": 0, "MaGiaoDich": "",
                                      "ThoiGianGD": np.format_time(now)}
            return np.sign_message(answer, "QUERY_RESPONSE", self.secret)
        payment = self.payments.get(str(message.get("MaThamChieu", "")))
        status = {"PENDING": "01", "PAID": "00", "FAILED": "02"}[payment.state] if payment \
            else ""
        answer = {"MaLoi": "00" if payment else "01", "MaDoiTac": self.partner_code,
                  "MaThamChieu": message.get("MaThamChieu", ""), "TrangThaiGD": status,
                  "SoTien": int(payment.init["SoTien"]) if payment else 0,
                  "MaGiaoDich": payment.transaction_id if payment else "",
                  "ThoiGianGD": np.format_time(now)}
        return np.sign_message(answer, "QUERY_RESPONSE", self.secret)


@dataclass
class GatewaySimulator:
    """A VNPay-style gateway: accepts our payment URL, and produces the IPN."""

    tmn_code: str
    secret: str
    _ids: Any = field(default_factory=lambda: itertools.count(14000000))

    def open(self, url: str) -> dict[str, str]:
        params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if secure_hash(params, self.secret) != params.get("vnp_SecureHash", "").lower():
            raise CallbackRejected("BAD_SIGNATURE")
        return params

    def ipn(self, url: str, *, now: dt.datetime, success: bool = True,
            amount: int | None = None) -> dict[str, str]:
        order = self.open(url)
        params = {
            "vnp_TmnCode": self.tmn_code,
            "vnp_Amount": to_gateway_amount(amount) if amount is not None
            else order["vnp_Amount"],
            "vnp_BankCode": "NCB", "vnp_BankTranNo": f"VNP{next(self._ids)}",
            "vnp_CardType": "ATM", "vnp_OrderInfo": order.get("vnp_OrderInfo", ""),
            "vnp_PayDate": now.astimezone(VN_TZ).strftime("%Y%m%d%H%M%S"),
            "vnp_ResponseCode": "00" if success else "24",
            "vnp_TransactionNo": str(next(self._ids)),
            "vnp_TransactionStatus": "00" if success else "02",
            "vnp_TxnRef": order["vnp_TxnRef"], "vnp_CurrCode": "VND",
        }
        params["vnp_SecureHashType"] = "HmacSHA512"
        params["vnp_SecureHash"] = secure_hash(params, self.secret)
        return params
