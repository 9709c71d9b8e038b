"""An HMAC-SHA512 payment gateway in the VNPay style (payment URL, IPN, query).

Parameters are ``vnp_*`` pairs; the secure hash is the hex HMAC-SHA512, under the merchant's
secret, of the parameters sorted by name, URL-encoded (``quote_plus``) and joined as
``k=v&k=v`` (``vnp_SecureHash`` and ``vnp_SecureHashType`` excluded). ``vnp_Amount`` counts
hundredths of a đồng: this module is the only place that multiplies or divides by 100.

The IPN (server-to-server notification) is answered with ``{"RspCode", "Message"}``: ``00``
confirmed, ``01`` order not found, ``02`` already confirmed, ``04`` invalid amount, ``97`` bad
checksum, ``99`` other. Answering 04 does not reverse a payment the gateway completed: the money
is held as an exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from payments.errors import CallbackRejected, InvalidAmount
from payments.money import VN_TZ, check_amount, require_utc, transliterate

__all__ = [
    "IPN_ALREADY_CONFIRMED",
    "IPN_BAD_CHECKSUM",
    "IPN_INVALID_AMOUNT",
    "IPN_NOT_FOUND",
    "IPN_OK",
    "IPN_OTHER",
    "GatewayNotification",
    "from_gateway_amount",
    "parse_ipn",
    "payment_url",
    "secure_hash",
    "to_gateway_amount",
]

IPN_OK = {"RspCode": "00", "Message": "Confirm Success"}
IPN_NOT_FOUND = {"RspCode": "01", "Message": "Order not found"}
IPN_ALREADY_CONFIRMED = {"RspCode": "02", "Message": "Order already confirmed"}
IPN_INVALID_AMOUNT = {"RspCode": "04", "Message": "invalid amount"}
IPN_BAD_CHECKSUM = {"RspCode": "97", "Message": "Invalid Checksum"}
IPN_OTHER = {"RspCode": "99", "Message": "Unknown error"}


def to_gateway_amount(dong: int) -> str:
    return str(check_amount(dong) * 100)


def from_gateway_amount(text: str) -> int:
    if not text.isdigit() or int(text) % 100:
        raise InvalidAmount("gateway amount is not a whole number of đồng")
    return int(text) // 100


def _hash_data(params: Mapping[str, str]) -> str:
    items = sorted((k, v) for k, v in params.items()
                   if k.startswith("vnp_") and k not in ("vnp_SecureHash", "vnp_SecureHashType")
                   and v != "")
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in items)


def secure_hash(params: Mapping[str, str], secret: str) -> str:
    return hmac.new(secret.encode(), _hash_data(params).encode("utf-8"),
                    hashlib.sha512).hexdigest()


def _time(at: dt.datetime) -> str:
    return require_utc(at).astimezone(VN_TZ).strftime("%Y%m%d%H%M%S")


def payment_url(base_url: str, *, tmn_code: str, secret: str, reference: str, amount: int,
                description: str, return_url: str, ip: str, at: dt.datetime,
                expires: dt.datetime) -> str:
    params = {
        "vnp_Version": "2.1.0", "vnp_Command": "pay", "vnp_TmnCode": tmn_code,
        "vnp_Amount": to_gateway_amount(amount), "vnp_CurrCode": "VND",
        "vnp_TxnRef": reference, "vnp_OrderInfo": transliterate(description)[:255],
        "vnp_OrderType": "billpayment", "vnp_Locale": "vn", "vnp_ReturnUrl": return_url,
        "vnp_IpAddr": ip, "vnp_CreateDate": _time(at), "vnp_ExpireDate": _time(expires),
    }
    params["vnp_SecureHash"] = secure_hash(params, secret)
    return f"{base_url}?{urlencode(params, quote_via=quote_plus)}"


@dataclass(frozen=True, slots=True)
class GatewayNotification:
    reference: str
    amount: int
    transaction_no: str
    bank_code: str
    success: bool
    response_code: str
    at: dt.datetime


def parse_ipn(params: Mapping[str, str], *, secret: str, tmn_code: str, now: dt.datetime,
              window: dt.timedelta = dt.timedelta(minutes=30)) -> GatewayNotification:
    """Verify (checksum, merchant, currency when present, amount shape, time window, order
    and transaction present) then parse an IPN."""
    given = params.get("vnp_SecureHash", "")
    if not hmac.compare_digest(given.lower().encode(), secure_hash(params, secret).encode()):
        raise CallbackRejected("BAD_SIGNATURE")
    if params.get("vnp_TmnCode") != tmn_code:
        raise CallbackRejected("WRONG_BENEFICIARY")
    if params.get("vnp_CurrCode", "VND") != "VND":
        raise CallbackRejected("BAD_CURRENCY")
    try:
        amount = from_gateway_amount(params.get("vnp_Amount", ""))
        local = dt.datetime.strptime(params.get("vnp_PayDate", ""), "%Y%m%d%H%M%S")
    except (InvalidAmount, ValueError):
        raise CallbackRejected("MALFORMED") from None
    at = local.replace(tzinfo=VN_TZ).astimezone(dt.UTC)
    if abs(require_utc(now) - at) > window:
        raise CallbackRejected("OUTSIDE_TIME_WINDOW")
    if not params.get("vnp_TxnRef") or not params.get("vnp_TransactionNo"):
        raise CallbackRejected("MALFORMED")
    success = params.get("vnp_ResponseCode") == "00" and \
        params.get("vnp_TransactionStatus", "00") == "00"
    return GatewayNotification(params.get("vnp_TxnRef", ""), amount,
                               params.get("vnp_TransactionNo", ""), params.get("vnp_BankCode", ""),
                               success, params.get("vnp_ResponseCode", ""), at)
