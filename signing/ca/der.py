"""A few DER (ITU-T X.690) encoders, for the structures this package writes on hot paths.

OCSP responses are produced thousands of times a second; assembling them from these byte-level
helpers is an order of magnitude faster than building a generic ASN.1 object tree. Everything
written here is read back with asn1crypto and by third-party tools in the tests.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "bit_string",
    "context",
    "enumerated",
    "generalized_time",
    "integer",
    "null",
    "octet_string",
    "oid",
    "sequence",
    "tlv",
]


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def integer(value: int) -> bytes:
    if value == 0:
        return b"\x02\x01\x00"
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
    return tlv(0x02, raw)


def enumerated(value: int) -> bytes:
    return tlv(0x0A, integer(value)[2:])


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)


def null() -> bytes:
    return b"\x05\x00"


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def generalized_time(value: dt.datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (RFC 5280 section 4.1.2.5.2)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return tlv(0x18, value.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode())


def context(number: int, content: bytes, *, constructed: bool = True) -> bytes:
    """A context-specific tag: EXPLICIT (``constructed``, wrapping a full TLV) or IMPLICIT
    primitive."""
    return tlv((0xA0 if constructed else 0x80) | number, content)
