"""The logical data structure of an eMRTD chip (ICAO 9303 part 10): the data groups this project
reads.

* DG1 (tag ``61``): the machine-readable zone (``5F1F``), parsed by :mod:`vnid.icao9303.mrz`.
* DG2 (tag ``75``): the face image; only its presence and hash are used, the image is not kept.
* DG13 (tag ``6D``): the Vietnamese card's personal data. Its layout is not published by the
  issuer; what this parser expects is what public reader implementations describe: a sequence of
  ``SEQUENCE { INTEGER field-number, value... }`` where the values are strings (UTF8String), and
  field 13 (parents) holds two names. Field numbers: 1 personal ID number, 2 full name, 3 date of
  birth (dd/mm/yyyy), 4 sex (Nam/Nữ), 5 nationality, 6 ethnicity, 7 religion, 8 place of origin,
  9 place of residence, 10 identifying marks, 11 date of issue, 12 date of expiry, 13 father's and
  mother's names, 14 spouse's name, 16 the old ID number. Unknown fields are kept as text in
  :attr:`Dg13.other` and never fail the parse; a field that cannot be read is left empty.
* DG14 (tag ``6E``): security infos; the chip-authentication public key is read from it.
* DG15 (tag ``6F``): the active-authentication public key (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from asn1crypto import core as asn1
from cryptography.hazmat.primitives.serialization import load_der_public_key

from vnid.icao9303.errors import ChipError
from vnid.icao9303.mrz import Td1, parse_td1

__all__ = ["DG_TAGS", "Dg13", "Tlv", "chip_authentication_key", "parse_dg1", "parse_dg13",
           "parse_dg15", "read_tlv"]

# The outer tag of each data group this project knows (ICAO 9303-10, table 34).
DG_TAGS = {1: 0x61, 2: 0x75, 13: 0x6D, 14: 0x6E, 15: 0x6F}

_MAX_DEPTH = 8
_MAX_ITEMS = 512


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV element: its full tag bytes as an integer, and its value bytes."""

    tag: int
    value: bytes
    raw: bytes  # the whole element: tag, length and value

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)


def _one(data: bytes, pos: int) -> tuple[Tlv, int]:
    start, end = pos, len(data)
    if pos >= end:
        raise ChipError("truncated data: a tag was expected")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # multi-byte tag
        for _ in range(3):
            if pos >= end:
                raise ChipError("truncated tag")
            tag = (tag << 8) | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                break
        else:
            raise ChipError("tag too long")
    if pos >= end:
        raise ChipError("truncated length")
    length = data[pos]
    pos += 1
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ChipError("unsupported or truncated length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise ChipError("a length runs past the end of the data")
    return Tlv(tag, data[pos:pos + length], data[start:pos + length]), pos + length


def read_tlv(data: bytes) -> Tlv:
    """Read exactly one TLV element that spans ``data`` (trailing bytes are an error)."""
    item, pos = _one(data, 0)
    if pos != len(data):
        raise ChipError("bytes after the end of the data group")
    return item


def _children(value: bytes) -> Iterator[Tlv]:
    pos, count = 0, 0
    while pos < len(value):
        item, pos = _one(value, pos)
        count += 1
        if count > _MAX_ITEMS:
            raise ChipError("too many elements")
        yield item


def _expect(data: bytes, dg: int) -> Tlv:
    outer = read_tlv(data)
    if outer.tag != DG_TAGS[dg]:
        raise ChipError(f"DG{dg} starts with tag {outer.tag:02X}, not {DG_TAGS[dg]:02X}")
    return outer


def parse_dg1(data: bytes) -> Td1:
    """The machine-readable zone stored in DG1, with every check digit verified."""
    outer = _expect(data, 1)
    for item in _children(outer.value):
        if item.tag == 0x5F1F:
            try:
                text = item.value.decode("ascii")
            except UnicodeDecodeError:
                raise ChipError("the MRZ in DG1 is not ASCII") from None
            return parse_td1(text)
    raise ChipError("DG1 holds no machine-readable zone (tag 5F1F)")


@dataclass(frozen=True, slots=True)
class Dg13:
    """The Vietnamese card's personal data (DG13), as read."""

    personal_id: str = ""
    full_name: str = ""
    date_of_birth: dt.date | None = None
    sex: str = ""  # as printed: "Nam" or "Nữ"
    nationality: str = ""
    ethnicity: str = ""
    religion: str = ""
    place_of_origin: str = ""
    place_of_residence: str = ""
    identifying_marks: str = ""
    date_of_issue: dt.date | None = None
    date_of_expiry: dt.date | None = None  # None: the card does not expire
    father_name: str = ""
    mother_name: str = ""
    spouse_name: str = ""
    old_id_number: str = ""
    other: dict[int, str] = field(default_factory=dict)

    def claims(self) -> dict[str, str]:
        """The fields that were present, as OpenID Connect style claim names and strings."""
        pairs = {
            "personal_id": self.personal_id, "name": self.full_name,
            "birthdate": self.date_of_birth.isoformat() if self.date_of_birth else "",
            "gender": {"Nam": "male", "Nữ": "female"}.get(self.sex, ""),
            "nationalities": self.nationality, "ethnicity": self.ethnicity,
            "religion": self.religion, "place_of_origin": self.place_of_origin,
            "place_of_residence": self.place_of_residence,
            "identifying_marks": self.identifying_marks,
            "father_name": self.father_name, "mother_name": self.mother_name,
            "spouse_name": self.spouse_name, "old_id_number": self.old_id_number,
            "document_issued": self.date_of_issue.isoformat() if self.date_of_issue else "",
            "document_expires": self.date_of_expiry.isoformat() if self.date_of_expiry else "",
        }
        return {k: v for k, v in pairs.items() if v}


_STRING_TAGS = {0x0C, 0x13, 0x16, 0x14, 0x1E, 0x04}


def _text(item: Tlv) -> str:
    if item.tag == 0x1E:
        return item.value.decode("utf-16-be", errors="replace").strip()
    return item.value.decode("utf-8", errors="replace").strip()


def _strings(item: Tlv, depth: int = 0) -> list[str]:
    if depth > _MAX_DEPTH:
        raise ChipError("DG13 is nested too deeply")
    if item.tag in _STRING_TAGS:
        return [_text(item)]
    if item.constructed:
        out: list[str] = []
        for child in _children(item.value):
            if child.tag == 0x02:
                continue  # an index inside a nested list
            out.extend(_strings(child, depth + 1))
        return out
    return []


def _vn_date(text: str) -> dt.date | None:
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%d%m%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _fields(item: Tlv, out: dict[int, list[str]], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ChipError("DG13 is nested too deeply")
    kids = list(_children(item.value))
    if item.tag == 0x30 and kids and kids[0].tag == 0x02 and len(kids[0].value) <= 2:
        number = int.from_bytes(kids[0].value, "big")
        values: list[str] = []
        for kid in kids[1:]:
            values.extend(_strings(kid, depth + 1))
        out.setdefault(number, values)
        return
    for kid in kids:
        if kid.constructed:
            _fields(kid, out, depth + 1)


def parse_dg13(data: bytes) -> Dg13:
    """The card's personal data from DG13 (see the module's notes on what is assumed)."""
    outer = _expect(data, 13)
    found: dict[int, list[str]] = {}
    for item in _children(outer.value):
        if item.constructed:
            _fields(item, found, 1)

    def first(n: int) -> str:
        values = found.get(n) or [""]
        return values[0]

    parents = found.get(13, [])
    known = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16}
    expiry_text = first(12)
    return Dg13(
        personal_id=first(1), full_name=first(2), date_of_birth=_vn_date(first(3)),
        sex=first(4), nationality=first(5), ethnicity=first(6), religion=first(7),
        place_of_origin=first(8), place_of_residence=first(9), identifying_marks=first(10),
        date_of_issue=_vn_date(first(11)),
        date_of_expiry=_vn_date(expiry_text),
        father_name=parents[0] if parents else "",
        mother_name=parents[1] if len(parents) > 1 else "",
        spouse_name=first(14), old_id_number=first(16),
        other={n: " / ".join(v) for n, v in found.items() if n not in known},
    )


def parse_dg15(data: bytes) -> bytes:
    """The active-authentication public key in DG15, as DER SubjectPublicKeyInfo (checked to load)."""
    outer = _expect(data, 15)
    spki = outer.value
    try:
        load_der_public_key(spki)
    except (ValueError, TypeError):
        raise ChipError("DG15 does not hold a public key") from None
    return spki


# id-PK-DH and id-PK-ECDH (BSI TR-03110 / ICAO 9303-11 9.2.5): ChipAuthenticationPublicKeyInfo.
_ID_PK = ("0.4.0.127.0.7.2.2.1.1", "0.4.0.127.0.7.2.2.1.2")


def chip_authentication_key(data: bytes) -> bytes | None:
    """The chip-authentication public key in DG14 (DER SubjectPublicKeyInfo), or None."""
    outer = _expect(data, 14)
    kids = list(_children(outer.value))
    infos = list(_children(kids[0].value)) if len(kids) == 1 and kids[0].tag == 0x31 else kids
    for info in infos:
        if info.tag != 0x30:
            continue
        parts = list(_children(info.value))
        if len(parts) < 2 or parts[0].tag != 0x06:
            continue
        try:
            oid = asn1.ObjectIdentifier.load(parts[0].raw).dotted
        except ValueError:
            continue
        if oid in _ID_PK and parts[1].tag == 0x30:
            return parts[1].raw
    return None
