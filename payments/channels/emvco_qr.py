"""VietQR: EMVCo merchant-presented QR (EMV QRCPS-MPM) as profiled by NAPAS 247.

Data objects are ``ID (2 digits) | length (2 digits) | value``; lengths count bytes, so everything
we emit is ASCII (Vietnamese is transliterated). The layout for a bank transfer::

    00 "01"                       payload format indicator
    01 "12" | "11"                dynamic (with an amount) | static
    38 { 00 "A000000727"          NAPAS GUID
         01 { 00 bank BIN, 01 account number (<= 19) }
         02 "QRIBFTTA" (to account) | "QRIBFTTC" (to card) }
    53 "704"                      VND
    54 amount                     whole đồng, <= 13 characters
    58 "VN"
    62 { 01 bill number, 05 reference label, 08 purpose }
    63 CRC                        CRC-16/CCITT-FALSE over everything up to and including "6304",
                                  4 upper-case hex digits, zero-padded

We carry the payment's ISO 11649 reference in 62.01 (bill number) and at the start of 62.08
(purpose): banking apps copy only the purpose into the transfer's remittance text, which is all the
bank statement will show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from payments.errors import InvalidQrPayload
from payments.money import check_amount, transliterate

__all__ = [
    "NAPAS_GUID",
    "SERVICE_TO_ACCOUNT",
    "SERVICE_TO_CARD",
    "VietQr",
    "build_vietqr",
    "crc16_ccitt_false",
    "decode_tlv",
    "encode_tlv",
    "parse_vietqr",
]

NAPAS_GUID = "A000000727"
SERVICE_TO_ACCOUNT = "QRIBFTTA"
SERVICE_TO_CARD = "QRIBFTTC"
_MAX_VALUE = 99


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode_tlv(tag: str, value: str) -> str:
    raw = value.encode("ascii", errors="strict") if value.isascii() else None
    if raw is None:
        raise InvalidQrPayload(f"field {tag} must be ASCII")
    if not raw or len(raw) > _MAX_VALUE:
        raise InvalidQrPayload(f"field {tag} must hold 1-99 bytes")
    return f"{tag}{len(raw):02d}{value}"


def decode_tlv(data: str) -> dict[str, str]:
    """One level of data objects; raises on anything malformed (including a repeated tag)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        head = data[i:i + 4]
        if len(head) < 4 or not head.isdigit():
            raise InvalidQrPayload("malformed data object header")
        tag, length = head[:2], int(head[2:])
        value = data[i + 4:i + 4 + length]
        if len(value) != length or length == 0:
            raise InvalidQrPayload(f"data object {tag} is truncated")
        if tag in out:
            raise InvalidQrPayload(f"data object {tag} appears twice")
        out[tag] = value
        i += 4 + length
    return out


@dataclass(frozen=True, slots=True)
class VietQr:
    """A VietQR (NAPAS EMVCo) payload: the account to pay, and optionally the amount and the reference to
    quote."""
    bank_bin: str
    account: str
    amount: int | None = None
    bill_number: str = ""
    reference_label: str = ""
    purpose: str = ""
    service: str = SERVICE_TO_ACCOUNT

    @property
    def dynamic(self) -> bool:
        return self.amount is not None


def _purpose_text(reference: str, text: str, limit: int) -> str:
    body = transliterate(text)
    combined = f"{reference} {body}".strip() if reference else body
    return combined[:limit].rstrip()


def build_vietqr(qr: VietQr) -> str:
    """The payload string (ASCII) for ``qr``, CRC included."""
    if not (len(qr.bank_bin) == 6 and qr.bank_bin.isdigit()):
        raise InvalidQrPayload("bank BIN must be 6 digits")
    if not (0 < len(qr.account) <= 19 and qr.account.isascii() and qr.account.isalnum()):
        raise InvalidQrPayload("account number must be 1-19 ASCII letters or digits")
    if qr.service not in (SERVICE_TO_ACCOUNT, SERVICE_TO_CARD):
        raise InvalidQrPayload("unknown VietQR service code")
    beneficiary = encode_tlv("00", qr.bank_bin) + encode_tlv("01", qr.account)
    merchant = (encode_tlv("00", NAPAS_GUID) + encode_tlv("01", beneficiary)
                + encode_tlv("02", qr.service))
    parts = [encode_tlv("00", "01"), encode_tlv("01", "12" if qr.dynamic else "11"),
             encode_tlv("38", merchant), encode_tlv("53", "704")]
    if qr.amount is not None:
        amount = str(check_amount(qr.amount))
        if len(amount) > 13:
            raise InvalidQrPayload("amount must fit in 13 characters")
        parts.append(encode_tlv("54", amount))
    parts.append(encode_tlv("58", "VN"))
    additional = ""
    if qr.bill_number:
        additional += encode_tlv("01", transliterate(qr.bill_number)[:25])
    if qr.reference_label:
        additional += encode_tlv("05", transliterate(qr.reference_label)[:25])
    room = _MAX_VALUE - len(additional) - 4
    purpose = _purpose_text("", qr.purpose, min(room, 50)) if qr.purpose else ""
    if purpose:
        additional += encode_tlv("08", purpose)
    if additional:
        parts.append(encode_tlv("62", additional))
    body = "".join(parts) + "6304"
    return body + f"{crc16_ccitt_false(body.encode('ascii')):04X}"


def parse_vietqr(payload: str) -> VietQr:
    """Decode and check a VietQR payload (CRC, GUID, currency, country); raises on any fault."""
    if not payload.isascii() or len(payload) < 8 or payload[-8:-4] != "6304":
        raise InvalidQrPayload("the payload does not end with a CRC field")
    if f"{crc16_ccitt_false(payload[:-4].encode('ascii')):04X}" != payload[-4:].upper():
        raise InvalidQrPayload("CRC mismatch")
    root = decode_tlv(payload)
    if root.get("00") != "01" or root.get("53") != "704" or root.get("58") != "VN":
        raise InvalidQrPayload("not a VND payload of format 01 for Vietnam")
    merchant = decode_tlv(root.get("38", ""))
    if merchant.get("00") != NAPAS_GUID:
        raise InvalidQrPayload("not a NAPAS 247 (VietQR) payload")
    beneficiary = decode_tlv(merchant.get("01", ""))
    additional: Mapping[str, str] = decode_tlv(root["62"]) if "62" in root else {}
    amount = int(root["54"]) if "54" in root else None
    if (amount is not None) != (root.get("01") == "12"):
        raise InvalidQrPayload("a dynamic payload carries an amount and a static one does not")
    return VietQr(beneficiary.get("00", ""), beneficiary.get("01", ""), amount,
                  additional.get("01", ""), additional.get("05", ""), additional.get("08", ""),
                  merchant.get("02", ""))
