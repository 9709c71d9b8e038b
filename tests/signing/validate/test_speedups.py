"""The faster hex-string reader and memoised name preparation behave exactly as pyHanko's and
asn1crypto's own: same values, same stream position afterwards, same errors."""

from __future__ import annotations

import io

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfStreamError

from signing.validate import _speedups

CASES = [b"<3082ABcd> rest", b"<30 82\n ab\tcd\r\x00> x", b"<abc>", b"<>", b"< >z",
         b"<30%comment\n82>tail", b"<" + b"ab" * 70000 + b">end"]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_same_value_and_position_as_pyhanko(data: bytes) -> None:
    ours, theirs = io.BytesIO(data), io.BytesIO(data)
    assert _speedups.read_hex_string(ours) == _speedups._original(theirs)
    assert ours.tell() == theirs.tell()


@pytest.mark.parametrize("data", [b"<30zz>", b"<3082", b"<"])
def test_same_errors(data: bytes) -> None:
    with pytest.raises(PdfStreamError):
        _speedups._original(io.BytesIO(data))
    with pytest.raises(PdfStreamError):
        _speedups.read_hex_string(io.BytesIO(data))


def test_name_preparation_is_the_same() -> None:
    for text in ["Nguyễn Văn  An", "ỦY BAN NHÂN DÂN", "  a\u00adb  ", "ﬁle"]:
        assert _speedups.ldap_string_prep(None, text) == \
            _speedups._original_prep(None, text)
    a = asn1_x509.Name.build({"common_name": "Ủy ban  nhân dân"})
    b = asn1_x509.Name.build({"common_name": "ủy ban nhân dân"})
    assert a == b
