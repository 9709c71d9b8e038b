"""Two hot spots of validating a PDF signature with pyHanko, made faster (internal).

**Hex strings.**
pyHanko reads a hex string (``<3082...>``) one byte at a time through a generator; a signature's
``/Contents`` is tens of kilobytes of hex, so reading it was about a third of the time to
validate a one-page B-LT document. :func:`install` replaces pyHanko's
``read_hex_string_from_stream`` with one that reads in blocks and decodes with ``bytes.fromhex``
semantics (whitespace ignored, an odd last digit padded with 0, anything else an error, as
ISO 32000-1 §7.3.4.3 says); the rare string with a comment in it goes to pyHanko's reader.

**Name comparison.** Path building and revocation checking compare X.509 names many times, and
asn1crypto prepares both strings (RFC 4518 string preparation, with Python's ``stringprep``)
at every comparison of freshly parsed certificates: about a quarter of the time. The
preparation is a pure function of the string, so its results are memoised (bounded).
"""

from __future__ import annotations

import binascii
import functools
import os
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfStreamError

__all__ = ["install", "ldap_string_prep", "read_hex_string", "uninstall"]

_BLOCK = 64 * 1024
_WHITESPACE = b" \n\r\t\f\x00"
_HEX = b"0123456789abcdefABCDEF"
_original = generic.read_hex_string_from_stream
_original_prep = asn1_x509.NameTypeAndValue._ldap_string_prep


def read_hex_string(stream: Any) -> Any:
    start = stream.tell()
    stream.read(1)  # "<"
    parts: list[bytes] = []
    while True:
        block = stream.read(_BLOCK)
        if not block:
            raise PdfStreamError("Stream ended prematurely")
        end = block.find(b">")
        if end >= 0:
            parts.append(block[:end])
            stream.seek(end + 1 - len(block), os.SEEK_CUR)
            break
        parts.append(block)
    digits = b"".join(parts).translate(None, _WHITESPACE)
    if digits.translate(None, _HEX):
        if b"%" in digits:  # a comment: pyHanko's own reader knows how to skip it
            stream.seek(start)
            return _original(stream)
        raise PdfStreamError("Unexpected token in hex string")
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


@functools.lru_cache(maxsize=8192)
def _prepared(string: str) -> str:
    value: str = _original_prep(None, string)
    return value


def ldap_string_prep(self: Any, string: str) -> str:
    return _prepared(string)


def install() -> None:
    generic.read_hex_string_from_stream = read_hex_string
    asn1_x509.NameTypeAndValue._ldap_string_prep = ldap_string_prep


def uninstall() -> None:
    """pyHanko and asn1crypto as shipped (for benchmarks that compare against them)."""
    generic.read_hex_string_from_stream = _original
    asn1_x509.NameTypeAndValue._ldap_string_prep = _original_prep
