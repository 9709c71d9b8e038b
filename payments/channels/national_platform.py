"""The national public-service portal's payment platform, message version 1.0.6.

Three exchanges, all JSON over HTTPS, each message carrying ``MaXacThuc``: the hex SHA-256 of the
listed fields' values joined with ``|`` with the shared secret appended as the last element (a
keyed hash, not an HMAC):

* ``INIT`` (partner -> platform): asks for a payment; the answer carries the payment URL the
  citizen is sent to. ``ThongTinBienLai`` describes the receipt(s) to issue, with separate phí and
  lệ phí lines (``PhiLePhi``) and the beneficiary account.
* confirmation callback (platform -> partner): the outcome (``MaLoi`` "00" = paid); the partner
  answers with ``MaLoi``/``MoTaLoi`` and its own ``MaXacThuc``.
* ``QUERY`` (partner -> platform): the status of a reference (``TrangThaiGD``).

The field lists for each hash are in :data:`HASH_FIELDS`, the one place to change if a deployment
of the platform orders them differently (observed in provincial integrations; unconfirmed against
the platform's own specification, which is not public).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from payments.errors import CallbackRejected, InvalidInput
from payments.fees.catalogue import FeeKind
from payments.money import VN_TZ, require_utc

__all__ = [
    "ANSWER_ALREADY_CONFIRMED",
    "ANSWER_OK",
    "HASH_FIELDS",
    "PLATFORM_VERSION",
    "Callback",
    "InitRequest",
    "ReceiptInfo",
    "ReceiptLine",
    "callback_answer",
    "format_time",
    "integrity_value",
    "parse_callback",
    "parse_time",
    "query_request",
    "sign_message",
    "verify_message",
]

PLATFORM_VERSION = "1.0.6"
HASH_FIELDS: Mapping[str, Sequence[str]] = {
    "INIT": ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "SoTien", "LoaiHinhThanhToan",
             "MaKenhThanhToan", "MaThietBi", "NgonNgu", "MaTienTe", "MaNganHang",
             "ThongTinGiaoDich", "ThoiGianGD", "Ip"),
    "INIT_RESPONSE": ("MaLoi", "MaDoiTac", "MaThamChieu", "UrlThanhToan", "ThoiGianGD"),
    "CONFIRM": ("LoaiBanTin", "MaLoi", "MaDoiTac", "MaThamChieu", "SoTien", "MaTienTe",
                "MaGiaoDich", "MaNganHang", "ThoiGianGD", "ThongTinGiaoDich"),
    "CONFIRM_ANSWER": ("MaLoi", "MoTaLoi", "MaDoiTac", "ThoiGianGD"),
    "QUERY": ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD"),
    "QUERY_RESPONSE": ("MaLoi", "MaDoiTac", "MaThamChieu", "TrangThaiGD", "SoTien",
                       "MaGiaoDich", "ThoiGianGD"),
}
ANSWER_OK = ("00", "Thanh cong")
ANSWER_ALREADY_CONFIRMED = ("02", "Giao dich da duoc xac nhan")
ANSWER_NOT_FOUND = ("01", "Khong tim thay giao dich")
ANSWER_BAD_AMOUNT = ("04", "So tien khong hop le")
ANSWER_BAD_HASH = ("97", "Sai ma xac thuc")
ANSWER_OTHER = ("99", "Loi khac")


def format_time(at: dt.datetime) -> str:
    """``yyyyMMddHHmmss``, 24-hour, Vietnam time."""
    return require_utc(at).astimezone(VN_TZ).strftime("%Y%m%d%H%M%S")


def parse_time(text: str) -> dt.datetime:
    try:
        local = dt.datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise InvalidInput("ThoiGianGD must be yyyyMMddHHmmss") from None
    return local.replace(tzinfo=VN_TZ).astimezone(dt.UTC)


def integrity_value(message: Mapping[str, Any], kind: str, secret: str) -> str:
    """``MaXacThuc`` for ``message``: hex SHA-256 of the fields of ``kind`` and the secret."""
    values = [str(message.get(name, "")) for name in HASH_FIELDS[kind]]
    return hashlib.sha256("|".join([*values, secret]).encode("utf-8")).hexdigest()


def sign_message(message: Mapping[str, Any], kind: str, secret: str) -> dict[str, Any]:
    return {**message, "MaXacThuc": integrity_value(message, kind, secret)}


def verify_message(message: Mapping[str, Any], kind: str, secret: str) -> bool:
    given = str(message.get("MaXacThuc", ""))
    return hmac.compare_digest(given.lower().encode(),
                               integrity_value(message, kind, secret).encode())


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    kind: FeeKind
    code: str
    name: str
    amount: int

    def to_json(self) -> dict[str, Any]:
        # LoaiPhiLePhi: "1" phí, "2" lệ phí.
        return {"LoaiPhiLePhi": "1" if self.kind is FeeKind.PHI else "2",
                "MaPhiLePhi": self.code, "TenPhiLePhi": self.name, "SoTien": self.amount}


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    procedure_code: str
    service_code: str
    agency_code: str
    dossier_code: str
    account_number: str
    bank_bin: str
    account_name: str
    payer_name: str
    payer_id: str
    payer_address: str
    lines: tuple[ReceiptLine, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "MaDichVu": "2", "MaTTHC": self.procedure_code, "MaDVC": self.service_code,
            "MaDonVi": self.agency_code, "MaHoSo": self.dossier_code,
            "TKThuHuong": self.account_number, "MaNHThuHuong": self.bank_bin,
            "TenTKThuHuong": self.account_name, "HoTenNguoiNop": self.payer_name,
            "SoCMNDNguoiNop": self.payer_id, "DiaChiNguoiNop": self.payer_address,
            "PhiLePhi": [line.to_json() for line in self.lines],
        }


@dataclass(frozen=True)
class InitRequest:
    partner_code: str
    reference: str
    amount: int
    description: str
    at: dt.datetime
    receipt: ReceiptInfo
    ip: str = "127.0.0.1"
    channel_code: str = ""
    bank_code: str = ""
    device: str = "WEB"
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_message(self, secret: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "LoaiBanTin": "INIT", "PhienBan": PLATFORM_VERSION, "MaDoiTac": self.partner_code,
            "MaThamChieu": self.reference, "SoTien": self.amount, "LoaiHinhThanhToan": "PAY",
            "MaKenhThanhToan": self.channel_code, "MaThietBi": self.device, "NgonNgu": "vi-VN",
            "MaTienTe": "VND", "MaNganHang": self.bank_code,
            "ThongTinGiaoDich": self.description, "ThoiGianGD": format_time(self.at),
            "Ip": self.ip, "ThongTinBienLai": self.receipt.to_json(),
        }
        return sign_message(msg, "INIT", secret)


def query_request(partner_code: str, reference: str, at: dt.datetime, secret: str
                  ) -> dict[str, Any]:
    msg = {"LoaiBanTin": "QUERY", "PhienBan": PLATFORM_VERSION, "MaDoiTac": partner_code,
           "MaThamChieu": reference, "ThoiGianGD": format_time(at)}
    return sign_message(msg, "QUERY", secret)


@dataclass(frozen=True, slots=True)
class Callback:
    reference: str
    amount: int
    transaction_id: str
    bank_code: str
    at: dt.datetime
    success: bool
    error_code: str


def parse_callback(message: Mapping[str, Any], *, secret: str, partner_code: str,
                   now: dt.datetime, window: dt.timedelta = dt.timedelta(minutes=15)) -> Callback:
    """Verify (integrity value, partner, currency, amount shape, time window), then parse."""
    if not isinstance(message, Mapping) or not verify_message(message, "CONFIRM", secret):
        raise CallbackRejected("BAD_SIGNATURE")
    if message.get("LoaiBanTin") not in ("CONFIRM", "NOTIFY", "PAY"):
        raise CallbackRejected("WRONG_MESSAGE_TYPE")
    if message.get("MaDoiTac") != partner_code:
        raise CallbackRejected("WRONG_PARTNER")
    if message.get("MaTienTe") != "VND":
        raise CallbackRejected("BAD_CURRENCY")
    amount = message.get("SoTien")
    if isinstance(amount, str) and amount.isdigit():
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CallbackRejected("BAD_AMOUNT")
    try:
        at = parse_time(str(message.get("ThoiGianGD", "")))
    except InvalidInput:
        raise CallbackRejected("MALFORMED") from None
    if abs(require_utc(now) - at) > window:
        raise CallbackRejected("OUTSIDE_TIME_WINDOW")
    reference, txn = str(message.get("MaThamChieu", "")), str(message.get("MaGiaoDich", ""))
    if not reference or not txn:
        raise CallbackRejected("MALFORMED")
    code = str(message.get("MaLoi", ""))
    return Callback(reference, amount, txn, str(message.get("MaNganHang", "")), at,
                    code == "00", code)


def callback_answer(answer: tuple[str, str], *, partner_code: str, now: dt.datetime,
                    secret: str) -> dict[str, Any]:
    msg = {"MaLoi": answer[0], "MoTaLoi": answer[1], "MaDoiTac": partner_code,
           "ThoiGianGD": format_time(now)}
    return sign_message(msg, "CONFIRM_ANSWER", secret)
