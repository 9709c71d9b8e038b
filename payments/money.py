"""Money as integer đồng, Vietnamese amounts in words, transliteration, and local business time.

VND has no minor unit: every amount in this package is a plain ``int`` of đồng, never a float.
Adapters that speak to systems counting in hundredths (VNPay's ``vnp_Amount``) convert at their own
edge. Instants are aware UTC datetimes; calendar days (business days, report bounds, receipt
years) are days in Asia/Ho_Chi_Minh (GMT+7, no daylight saving).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from zoneinfo import ZoneInfo

from payments.errors import InvalidAmount, InvalidInput

__all__ = [
    "MAX_AMOUNT",
    "VN_TZ",
    "amount_in_words",
    "check_amount",
    "format_vnd",
    "local_date",
    "local_day_bounds",
    "require_utc",
    "transliterate",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# The EMVCo amount field holds at most 13 characters; no fee comes close.
MAX_AMOUNT = 9_999_999_999_999


def check_amount(value: object, *, field: str = "amount", allow_zero: bool = False) -> int:
    """``value`` if it is an integer number of đồng in range; raises ``InvalidAmount`` otherwise.

    Booleans and floats are refused even when integral: a float in a money path is a bug."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(f"{field} must be an integer number of đồng",
                            metadata={"field": field})
    if value < 0 or (value == 0 and not allow_zero) or value > MAX_AMOUNT:
        raise InvalidAmount(f"{field} is out of range", metadata={"field": field})
    return value


def format_vnd(amount: int) -> str:
    """``1234567`` -> ``"1.234.567 ₫"`` (dot as thousands separator, as printed in Vietnam)."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,}".replace(",", ".") + " ₫"


_DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]
_GROUPS = ["", " nghìn", " triệu", " tỷ", " nghìn tỷ", " triệu tỷ"]


def _three(n: int, full: bool) -> str:
    """Words for 0 < n < 1000; ``full`` spells the leading zeros ("không trăm linh năm")."""
    h, t, u = n // 100, n // 10 % 10, n % 10
    parts: list[str] = []
    if h or full:
        parts += [_DIGITS[h], "trăm"]
    if t == 0:
        if u and parts:
            parts.append("linh")
    elif t == 1:
        parts.append("mười")
    else:
        parts += [_DIGITS[t], "mươi"]
    if u:
        if u == 1 and t > 1:
            parts.append("mốt")
        elif u == 5 and t > 0:
            parts.append("lăm")
        elif u == 4 and t > 1:
            parts.append("tư")
        else:
            parts.append(_DIGITS[u])
    return " ".join(parts)


def amount_in_words(amount: int) -> str:
    """The amount in Vietnamese words as printed on receipts: ``150000`` ->
    ``"Một trăm năm mươi nghìn đồng"``. Negative amounts (adjustments) read "Âm ..."."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount("amount must be an integer number of đồng")
    if amount == 0:
        return "Không đồng"
    negative, n = amount < 0, abs(amount)
    groups: list[int] = []
    while n:
        groups.append(n % 1000)
        n //= 1000
    if len(groups) > len(_GROUPS):
        raise InvalidAmount("amount is too large to write in words")
    words: list[str] = []
    for index in range(len(groups) - 1, -1, -1):
        value = groups[index]
        if value == 0:
            continue
        full = index != len(groups) - 1
        words.append(_three(value, full) + _GROUPS[index])
    text = " ".join(words) + " đồng"
    text = ("âm " + text) if negative else text
    return text[0].upper() + text[1:]


def transliterate(text: str) -> str:
    """Vietnamese text as plain ASCII: diacritics dropped, ``đ``/``Đ`` -> ``d``/``D``, other
    non-ASCII characters removed and whitespace collapsed (for QR payloads and bank remittances,
    whose lengths count bytes)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(c for c in decomposed if c.isascii() and not unicodedata.combining(c))
    printable = "".join(c if c.isprintable() else " " for c in ascii_only)
    return " ".join(printable.split())


def require_utc(at: dt.datetime, *, field: str = "time") -> dt.datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{field} must be timezone-aware", metadata={"field": field})
    return at.astimezone(dt.UTC)


def local_date(at: dt.datetime) -> dt.date:
    """The calendar day in Vietnam of the instant ``at``."""
    return require_utc(at).astimezone(VN_TZ).date()


def local_day_bounds(first: dt.date, last: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` in UTC of the Vietnamese days ``first`` .. ``last`` (inclusive)."""
    last = last or first
    start = dt.datetime.combine(first, dt.time(), VN_TZ).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), VN_TZ).astimezone(dt.UTC)
    return start, end
