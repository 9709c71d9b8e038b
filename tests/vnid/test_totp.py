from __future__ import annotations

import datetime as dt

from vnid.authn.totp import TotpSettings, verify_totp

# RFC 6238 Appendix B, SHA-1 seed "12345678901234567890" in base32, 8 digits.
SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
EIGHT = TotpSettings(digits=8, window=0)


def at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def test_rfc6238_vectors() -> None:
    for t, code in ((59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"),
                    (2000000000, "69279037")):
        assert verify_totp(SECRET, code, now=at(t), last_step=None, settings=EIGHT) == t // 30


def test_replay_and_window() -> None:
    six = TotpSettings()
    import pyotp

    code = pyotp.TOTP(SECRET).at(1111111109)
    step = verify_totp(SECRET, code, now=at(1111111109 + 25), last_step=None, settings=six)
    assert step is not None
    assert verify_totp(SECRET, code, now=at(1111111109 + 25), last_step=step, settings=six) is None
    assert verify_totp(SECRET, code, now=at(1111111109 + 120), last_step=None, settings=six) is None
    assert verify_totp(SECRET, "12 34", now=at(59), last_step=None, settings=six) is None
