"""An outsider's attacks on the receipts' signed QR codes (payments/receipts/qr_jws.py): hostile
JWS headers must end in the one opaque error, never in a crash or an accepted token."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from payments.errors import ReceiptQrInvalid
from payments.money import VN_TZ
from payments.receipts.qr_jws import QrClaims, verify_qr


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


CLAIMS = QrClaims("EBL01", "25T", 1, dt.datetime(2025, 8, 1, 9, tzinfo=VN_TZ), "G01",
                  "0101234567", "", 100000, bytes(32))


@pytest.mark.parametrize("alg", [[], {}, ["ES256"], {"ES256": 1}, None, 256, "none", "HS256",
                                 "RS256", "es256", "ES256 "])
@pytest.mark.parametrize("thumb", ["x", ["x"], {"x": 1}, None])
def test_hostile_headers_are_one_opaque_error(alg: Any, thumb: Any) -> None:
    header = _b64(json.dumps({"typ": "BL1", "alg": alg, "x5t#S256": thumb}).encode())
    token = f"{header}.{_b64(CLAIMS.to_json())}.{_b64(b'x' * 64)}"
    with pytest.raises(ReceiptQrInvalid) as err:
        verify_qr(token, roots=[], certificates=[])
    assert err.value.detail == "UNSUPPORTED_HEADER"


@pytest.mark.parametrize("where", ["header", "payload"])
def test_deeply_nested_json_fitting_in_a_qr_is_malformed(where: str) -> None:
    """1 100 brackets fit in a QR's 2 048 characters and exceed the JSON parser's recursion
    limit: RecursionError escaped the verifier."""
    deep = _b64(b"[" * 1100)
    header = _b64(json.dumps({"typ": "BL1", "alg": "ES256", "x5t#S256": "x"}).encode())
    token = f"{deep}.{_b64(CLAIMS.to_json())}.AA" if where == "header" else f"{header}.{deep}.AA"
    with pytest.raises(ReceiptQrInvalid) as err:
        verify_qr(token, roots=[], certificates=[])
    assert err.value.detail == "MALFORMED"
