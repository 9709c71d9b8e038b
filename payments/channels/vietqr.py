"""VietQR bank transfers to a collection account: the QR for a payment, its image, and the bank's
credit notification.

The QR is the EMVCo payload of :mod:`payments.channels.emvco_qr` with the payment's ISO 11649
reference in 62.01 and at the start of 62.08. Banks announce incoming transfers to the account
holder with a signed notification; the format differs per bank, so this module fixes one neutral
JSON shape (below) signed with HMAC-SHA256 over the exact body, and adapters for a particular bank
translate into it. Fields::

    {"transactionId": "FT25213...", "bankBin": "970415", "accountNumber": "113000012345",
     "amount": 150000, "currency": "VND", "description": "RF60P8K3M2Q9X7 Le phi ...",
     "transactionTime": "2025-08-01T09:15:02+07:00", "counterAccount": "...", "counterName": "..."}

header ``X-Bank-Signature: sha256=<hex HMAC-SHA256(secret, body)>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
from dataclasses import dataclass
from typing import Any

import segno

from payments.accounts import CollectionAccount
from payments.channels.emvco_qr import VietQr, build_vietqr
from payments.errors import CallbackRejected
from payments.money import VN_TZ, require_utc, transliterate

__all__ = [
    "BankNotification",
    "SIGNATURE_HEADER",
    "parse_bank_notification",
    "qr_png",
    "qr_svg",
    "sign_bank_notification",
    "vietqr_for_payment",
]

SIGNATURE_HEADER = "X-Bank-Signature"


def vietqr_for_payment(account: CollectionAccount, *, amount: int, reference: str,
                       description: str) -> str:
    """The VietQR payload that pays ``amount`` to ``account`` quoting ``reference``."""
    prefix = account.remittance_prefix()
    purpose = " ".join(p for p in (reference, prefix, transliterate(description)) if p)
    return build_vietqr(VietQr(account.bank_bin, account.account_number, amount,
                               bill_number=reference, purpose=purpose))


def qr_png(payload: str, *, scale: int = 6) -> bytes:
    """A PNG of the QR (error correction M, quiet zone of 4 modules)."""
    out = io.BytesIO()
    segno.make_qr(payload, error="m", boost_error=False).save(out, kind="png", scale=scale,
                                                               border=4)
    return out.getvalue()


def qr_svg(payload: str, *, scale: int = 4) -> bytes:
    """``payload`` as a QR code in SVG (error correction level M)."""
    out = io.BytesIO()
    segno.make_qr(payload, error="m", boost_error=False).save(out, kind="svg", scale=scale,
                                                               border=4, xmldecl=False)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class BankNotification:
    """A bank's signed notice of a credit to a collection account (a VietQR transfer arriving)."""
    transaction_id: str
    bank_bin: str
    account_number: str
    amount: int
    currency: str
    description: str
    at: dt.datetime
    counter_account: str = ""
    counter_name: str = ""

    def to_json(self) -> bytes:
        return json.dumps({
            "transactionId": self.transaction_id, "bankBin": self.bank_bin,
            "accountNumber": self.account_number, "amount": self.amount,
            "currency": self.currency, "description": self.description,
            "transactionTime": self.at.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "counterAccount": self.counter_account, "counterName": self.counter_name,
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign_bank_notification(body: bytes, secret: bytes) -> str:
    """The ``sha256=`` HMAC signature of a bank notification ``body`` with the shared ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def parse_bank_notification(body: bytes, signature: str, secret: bytes, *,
                            account: CollectionAccount, now: dt.datetime,
                            window: dt.timedelta = dt.timedelta(hours=24)) -> BankNotification:
    """Verify then parse: signature first, then shape, currency, beneficiary account and time
    window. Any failure is one opaque :class:`CallbackRejected` (``detail`` says which check)."""
    expected = sign_bank_notification(body, secret)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise CallbackRejected("BAD_SIGNATURE")
    try:
        data: Any = json.loads(body)
        at = dt.datetime.fromisoformat(str(data["transactionTime"]))
        amount = data["amount"]
        fields = {k: str(data.get(k, "")) for k in (
            "transactionId", "bankBin", "accountNumber", "currency", "description",
            "counterAccount", "counterName")}
    except (ValueError, KeyError, TypeError):
        raise CallbackRejected("MALFORMED") from None
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CallbackRejected("BAD_AMOUNT")
    if fields["currency"] != "VND":
        raise CallbackRejected("BAD_CURRENCY")
    if (fields["bankBin"], fields["accountNumber"]) != (account.bank_bin, account.account_number):
        raise CallbackRejected("WRONG_BENEFICIARY")
    if at.tzinfo is None or abs(require_utc(now) - at) > window:
        raise CallbackRejected("OUTSIDE_TIME_WINDOW")
    if not fields["transactionId"]:
        raise CallbackRejected("MALFORMED")
    return BankNotification(fields["transactionId"], fields["bankBin"], fields["accountNumber"],
                            amount, "VND", fields["description"], at.astimezone(dt.UTC),
                            fields["counterAccount"], fields["counterName"])
